"""ReceiveWebhook: POST /webhooks/wavespeed — verify, look up, act on WaveSpeed's own answer.

Nothing is read or written before the signature checks out, and no large I/O happens here:
completed tasks are handed to the store queue.

One route, so the HTTP API's payload 2.0 event is read here directly: Powertools' event handler cost
~35 ms of CPU at every cold start (docs/benchmarks.md) for what is one `if`.
"""

from __future__ import annotations

import gc

# The imports make ~100k objects that live as long as the container (botocore's models, pydantic's
# validators): collecting while they are made only re-scans them (docs/benchmarks.md, cold start).
gc.disable()  # until the end of this module, which freezes what the imports made

import base64
import binascii
import json
import re
import time
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from loradrop.deadline import Deadline
from loradrop.models import Prediction
from loradrop.redaction import json_for_logs
from loradrop.services import tracker, webhook_secrets
from loradrop.settings import webhook_settings
from loradrop.signing import InvalidSignature, SignatureMismatch, verify
from loradrop.tracking import JobNotFound
from loradrop.wavespeed import WaveSpeedError

logger = Logger(json_serializer=json_for_logs)  # every log line is redacted
metrics = Metrics()
ROUTE = ("POST", "/webhooks/wavespeed")
ANSWER_SECONDS = 1.5  # kept back from the invocation's time for the writes after the last WaveSpeed answer


class HttpError(Exception):
    """An answer other than 200, with the message the caller sees."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _answer(status: int, body: dict[str, Any]) -> dict[str, Any]:
    """An HTTP API (payload 2.0) response."""
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps(body),
        "isBase64Encoded": False,
    }


def _raw_body(event: dict[str, Any]) -> bytes:
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise HttpError(400, "body is not valid base64") from None
    return str(body).encode("utf-8")


def _verify(headers: dict[str, str], body: bytes, deadline: Deadline) -> None:
    settings = webhook_settings()
    secrets = webhook_secrets()
    try:
        try:
            verify(headers, body, secrets.get(deadline), now=time.time(), tolerance=settings.webhook_tolerance_seconds)
        except SignatureMismatch:
            fresh = secrets.refresh(deadline)  # the secret may have been rotated; rate limited
            if fresh is None:
                raise
            verify(headers, body, fresh, now=time.time(), tolerance=settings.webhook_tolerance_seconds)
    except InvalidSignature as err:
        metrics.add_metric(name="WebhooksRejected", unit=MetricUnit.Count, value=1)
        logger.warning("webhook rejected", extra={"reason": str(err)})
        raise HttpError(401, "invalid webhook signature") from None


def _job_hint(event: dict[str, Any]) -> str | None:
    """The job id loradrop put in the webhook URL: unsigned, so only a hint (the body decides)."""
    value = (event.get("queryStringParameters") or {}).get("job") or ""
    return value if re.fullmatch(r"[a-z0-9-]{1,80}", value) else None


def wavespeed_webhook(event: dict[str, Any], deadline: Deadline) -> dict[str, Any]:
    body = _raw_body(event)
    if len(body) > webhook_settings().webhook_max_body_bytes:
        raise HttpError(413, "webhook body too large")
    _verify(event.get("headers") or {}, body, deadline)
    try:
        hint = Prediction.model_validate_json(body)
    except ValidationError:
        raise HttpError(400, "body is not a WaveSpeed task object") from None
    try:
        job, outcome = tracker().on_webhook(hint, _job_hint(event), deadline)
    except JobNotFound:
        raise HttpError(404, "no job has this task id (yet)") from None
    logger.info("webhook handled", extra={"prediction_id": hint.id, "outcome": outcome})
    return {"job_id": job.job_id, "status": job.status.value, "outcome": outcome}


@logger.inject_lambda_context(clear_state=True, correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    http = (event.get("requestContext") or {}).get("http") or {}
    if (http.get("method"), event.get("rawPath")) != ROUTE:
        return _answer(404, {"statusCode": 404, "message": "Not found"})
    # Every WaveSpeed call fits before this deadline: an answer WaveSpeed can retry beats being cut off.
    deadline = Deadline.within(context.get_remaining_time_in_millis() / 1000 - ANSWER_SECONDS)
    try:
        return _answer(200, wavespeed_webhook(event, deadline))
    except HttpError as err:
        return _answer(err.status, {"statusCode": err.status, "message": err.message})
    except WaveSpeedError as err:
        # WaveSpeed retries unacknowledged webhooks, and the reconciler backs that up.
        logger.warning("WaveSpeed unavailable while handling a webhook", extra={"reason": err.message})
        return _answer(503, {"message": "WaveSpeed unavailable, retry later"})


gc.freeze()  # init's objects stay for the container's life: no later collection scans them again
gc.enable()
