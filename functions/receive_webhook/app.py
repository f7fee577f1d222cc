"""ReceiveWebhook: POST /webhooks/wavespeed — verify, look up, act on WaveSpeed's own answer.

Nothing is read or written before the signature checks out, and no large I/O happens here:
completed tasks are handed to the store queue.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import (
    BadRequestError,
    NotFoundError,
    ServiceError,
    UnauthorizedError,
)
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from loradrop.models import Prediction
from loradrop.redaction import json_for_logs
from loradrop.services import tracker, webhook_secrets
from loradrop.settings import webhook_settings
from loradrop.signing import InvalidSignature, SignatureMismatch, verify
from loradrop.tracking import JobNotFound
from loradrop.wavespeed import WaveSpeedError

logger = Logger(json_serializer=json_for_logs)  # every log line is redacted
metrics = Metrics()
app = APIGatewayHttpResolver()


def _raw_body() -> bytes:
    event = app.current_event
    body = event.body or ""
    if event.is_base64_encoded:
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequestError("body is not valid base64") from None
    return body.encode("utf-8")


def _verify(headers: dict[str, str], body: bytes) -> None:
    settings = webhook_settings()
    secrets = webhook_secrets()
    try:
        try:
            verify(headers, body, secrets.get(), now=time.time(), tolerance=settings.webhook_tolerance_seconds)
        except SignatureMismatch:
            fresh = secrets.refresh()  # the secret may have been rotated; rate limited
            if fresh is None:
                raise
            verify(headers, body, fresh, now=time.time(), tolerance=settings.webhook_tolerance_seconds)
    except InvalidSignature as err:
        metrics.add_metric(name="WebhooksRejected", unit=MetricUnit.Count, value=1)
        logger.warning("webhook rejected", extra={"reason": str(err)})
        raise UnauthorizedError("invalid webhook signature") from None


def _job_hint() -> str | None:
    """The job id loradrop put in the webhook URL: unsigned, so only a hint (the body decides)."""
    value = (app.current_event.query_string_parameters or {}).get("job") or ""
    return value if re.fullmatch(r"[a-z0-9-]{1,80}", value) else None


@app.post("/webhooks/wavespeed")
def wavespeed_webhook() -> dict[str, Any]:
    body = _raw_body()
    if len(body) > webhook_settings().webhook_max_body_bytes:
        raise ServiceError(413, "webhook body too large")
    _verify(dict(app.current_event.headers), body)
    try:
        hint = Prediction.model_validate_json(body)
    except ValidationError:
        raise BadRequestError("body is not a WaveSpeed task object") from None
    try:
        job, outcome = tracker().on_webhook(hint, _job_hint())
    except JobNotFound:
        raise NotFoundError("no job has this task id (yet)") from None
    logger.info("webhook handled", extra={"prediction_id": hint.id, "outcome": outcome})
    return {"job_id": job.job_id, "status": job.status.value, "outcome": outcome}


@app.exception_handler(WaveSpeedError)
def wavespeed_unavailable(err: WaveSpeedError) -> Response[Any]:
    # WaveSpeed retries unacknowledged webhooks, and the reconciler backs that up.
    logger.warning("WaveSpeed unavailable while handling a webhook", extra={"reason": err.message})
    return Response(503, content_types.APPLICATION_JSON, {"message": "WaveSpeed unavailable, retry later"})


@logger.inject_lambda_context(clear_state=True, correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
