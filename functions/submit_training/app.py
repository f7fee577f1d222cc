"""SubmitTraining: S3 upload notifications (via the intake queue, or bare) → WaveSpeed tasks."""

from __future__ import annotations

import gc

# The imports make ~100k objects that live as long as the container (botocore's models, pydantic's
# validators): collecting while they are made only re-scans them (docs/benchmarks.md, cold start).
gc.disable()  # until the end of this module, which freezes what the imports made

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext

from loradrop.dataset import SURVEY_SECONDS
from loradrop.deadline import Deadline
from loradrop.messages import MalformedMessage, S3Notification, S3TestEvent, SubmitRequest, read_intake
from loradrop.queues import (
    Deferred,
    QueueRecord,
    backoff_seconds,
    delay_redelivery,
    partial_batch,
    rate_limit_backoff_seconds,
)
from loradrop.redaction import json_for_logs
from loradrop.services import aws, submitter
from loradrop.settings import submit_settings
from loradrop.submission import RetryLater, UploadRef
from loradrop.wavespeed import longest_submit_seconds

logger = Logger(json_serializer=json_for_logs)  # every log line is redacted
metrics = Metrics()


class _Invocation:
    """The running invocation's state (one at a time per container): after a 429 the rest of the batch
    waits instead of hitting WaveSpeed."""

    rate_limited = False
    context: LambdaContext | None = None


_invocation = _Invocation()


def _may_submit() -> None:
    """Defer the rest of a batch after a 429, or when a slow WaveSpeed answer could outlast the
    invocation (a POST cut off by the Lambda timeout would leave an uncertain outcome)."""
    if _invocation.rate_limited:
        raise RetryLater("rate limited earlier in this batch", rate_limited=True)
    context = _invocation.context
    # Room for the dataset survey before the POST, the longest POST, and 15 s for the writes after it.
    needed_ms = (SURVEY_SECONDS + longest_submit_seconds(submit_settings().submit_timeout_seconds) + 15) * 1000
    if context is not None and context.get_remaining_time_in_millis() < needed_ms:
        raise RetryLater("not enough time left in this invocation for another submission")


def _uploads(body: dict[str, Any]) -> list[UploadRef]:
    return [
        UploadRef.from_s3_record(record)
        for record in body.get("Records", [])
        if record.get("eventSource") == "aws:s3" and str(record.get("eventName", "")).startswith("ObjectCreated")
    ]


def _is_upload(upload: UploadRef) -> bool:
    if upload.is_folder_marker:
        logger.info("folder marker ignored (the S3 console's 'Create folder')", extra={"key": upload.key})
        return False
    return True


def _deadline() -> Deadline | None:
    context = _invocation.context
    return Deadline.within(context.get_remaining_time_in_millis() / 1000) if context is not None else None


def _process_message(message: SubmitRequest | S3TestEvent | S3Notification) -> None:
    if isinstance(message, S3TestEvent):
        logger.info("S3 test event ignored")
        return
    if isinstance(message, SubmitRequest):
        _may_submit()
        if message.action == "retry":  # a person's `loradrop retry` of a FAILED job
            submitter().retry(message.job_id, _deadline())
        else:
            submitter().resubmit(message.job_id, _deadline())
        return
    uploads = _uploads(message.model_dump())
    if not uploads:
        raise MalformedMessage("an S3 notification without ObjectCreated records")
    for upload in filter(_is_upload, uploads):
        _may_submit()
        submitter().accept_upload(upload, _deadline())


def record_handler(record: QueueRecord) -> None:
    try:
        _process_message(read_intake(record.body))
    except MalformedMessage as err:
        # No retry can fix it: back on the queue at once, so it reaches the DLQ in seconds, not hours.
        logger.error("malformed intake message: it goes to the dead-letter queue", extra={"problem": str(err)})
        delay_redelivery(aws("sqs"), record.event_source_arn, record.receipt_handle, 1)
        raise Deferred from err
    except RetryLater as err:
        _invocation.rate_limited = _invocation.rate_limited or err.rate_limited
        count = record.receive_count
        settings = submit_settings()
        if err.rate_limited:
            delay = rate_limit_backoff_seconds(
                count, starts_per_minute=settings.starts_per_minute, submitters=settings.submit_concurrency
            )
        else:
            delay = backoff_seconds(count, base=30)
        scale = settings.retry_delay_scale
        delay_redelivery(aws("sqs"), record.event_source_arn, record.receipt_handle, delay, scale=scale)
        raise Deferred from err


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    _invocation.rate_limited = False
    _invocation.context = context
    records = event.get("Records", [])
    if records and records[0].get("eventSource") == "aws:s3":  # a bare S3 event (e.g. sam local invoke)
        jobs = [submitter().accept_upload(upload, _deadline()) for upload in filter(_is_upload, _uploads(event))]
        return {"jobs": [{"job_id": j.job_id, "status": j.status.value} for j in jobs]}
    return partial_batch(event, record_handler)


gc.freeze()  # init's objects stay for the container's life: no later collection scans them again
gc.enable()
