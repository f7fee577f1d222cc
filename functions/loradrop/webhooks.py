"""ReceiveWebhook's request: POST /webhooks/wavespeed → verified, looked up, acted on by WaveSpeed's own answer.

Nothing is read or written before the signature checks out, and no large I/O happens here: completed tasks
are handed to the store queue. One route, so the HTTP API's payload 2.0 event is read here directly:
Powertools' event handler cost ~35 ms of CPU at every cold start (docs/benchmarks.md) for what is one `if`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from pydantic import ValidationError

from loradrop.credentials import WebhookSecretSource
from loradrop.deadline import Deadline
from loradrop.models import Task
from loradrop.sampling import SampleNotFound
from loradrop.settings import WebhookSettings
from loradrop.signing import InvalidSignature, SignatureMismatch, verify
from loradrop.tracking import JobNotFound, Tracker

logger = Logger(child=True)
metrics = Metrics()
ROUTE = ("POST", "/webhooks/wavespeed")


class HttpError(Exception):
    """An answer other than 200, with the message the caller sees."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def is_route(event: dict[str, Any]) -> bool:
    http = (event.get("requestContext") or {}).get("http") or {}
    return (http.get("method"), event.get("rawPath")) == ROUTE


def answer(status: int, body: dict[str, Any]) -> dict[str, Any]:
    """An HTTP API (payload 2.0) response."""
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps(body),
        "isBase64Encoded": False,
    }


def receive(
    event: dict[str, Any],
    deadline: Deadline,
    settings: WebhookSettings,
    secrets: Callable[[], WebhookSecretSource],
    tracker: Callable[[], Tracker],
) -> dict[str, Any]:
    """The webhook's answer (200); raises HttpError for any other."""
    body = _raw_body(event)
    if len(body) > settings.webhook_max_body_bytes:
        raise HttpError(413, "webhook body too large")
    _verify(event.get("headers") or {}, body, deadline, settings, secrets())
    try:
        hint = Task.model_validate_json(body)
    except ValidationError:
        raise HttpError(400, "body is not a WaveSpeed task object") from None
    try:
        sample = tracker().samples.on_webhook(hint, _job_hint(event), _sample_hint(event), deadline)
        if sample is not None:
            row, said = sample
            logger.info("sample webhook handled", extra={"prediction_id": hint.id, "outcome": said})
            return {"job_id": row.parent_job_id, "sample": row.index, "status": row.status.value, "outcome": said}
        job, outcome = tracker().on_webhook(hint, _job_hint(event), deadline)
    except (JobNotFound, SampleNotFound):
        raise HttpError(404, "no job has this task id (yet)") from None
    logger.info("webhook handled", extra={"prediction_id": hint.id, "outcome": outcome})
    return {"job_id": job.job_id, "status": job.status.value, "outcome": outcome}


def _raw_body(event: dict[str, Any]) -> bytes:
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise HttpError(400, "body is not valid base64") from None
    return str(body).encode("utf-8")


def _verify(
    headers: dict[str, str], body: bytes, deadline: Deadline, settings: WebhookSettings, secrets: WebhookSecretSource
) -> None:
    tolerance = settings.webhook_tolerance_seconds
    try:
        try:
            verify(headers, body, secrets.get(deadline), now=time.time(), tolerance=tolerance)
        except SignatureMismatch:
            fresh = secrets.refresh(deadline)  # the secret may have been rotated; rate limited
            if fresh is None:
                raise
            verify(headers, body, fresh, now=time.time(), tolerance=tolerance)
    except InvalidSignature as err:
        metrics.add_metric(name="WebhooksRejected", unit=MetricUnit.Count, value=1)
        logger.warning("webhook rejected", extra={"reason": str(err)})
        raise HttpError(401, "invalid webhook signature") from None


def _sample_hint(event: dict[str, Any]) -> int | None:
    """Which of the job's samples loradrop put in the webhook URL (unsigned: the task's input decides)."""
    value = (event.get("queryStringParameters") or {}).get("sample") or ""
    return int(value) if re.fullmatch(r"\d{1,2}", value) else None


def _job_hint(event: dict[str, Any]) -> str | None:
    """The job id loradrop put in the webhook URL: unsigned, so only a hint (the body decides)."""
    value = (event.get("queryStringParameters") or {}).get("job") or ""
    return value if re.fullmatch(r"[a-z0-9-]{1,80}", value) else None
