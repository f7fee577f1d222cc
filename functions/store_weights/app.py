"""StoreWeights: store-queue messages → weights streamed into S3 → COMPLETED."""

from __future__ import annotations

import gc

# The imports make ~100k objects that live as long as the container (botocore's models, pydantic's
# validators): collecting while they are made only re-scans them (docs/benchmarks.md, cold start).
gc.disable()  # until the end of this module, which freezes what the imports made

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext

from loradrop.messages import MalformedMessage, read_store
from loradrop.queues import Deferred, QueueRecord, backoff_seconds, delay_redelivery, partial_batch
from loradrop.redaction import json_for_logs
from loradrop.services import aws, storer
from loradrop.settings import store_settings
from loradrop.storing import CopyInProgress

logger = Logger(json_serializer=json_for_logs)  # every log line is redacted
metrics = Metrics()


class _Invocation:
    """The running invocation's context (one at a time per container)."""

    context: LambdaContext | None = None


_invocation = _Invocation()


def record_handler(record: QueueRecord) -> None:
    count = record.receive_count
    context = _invocation.context
    assert context is not None  # set by handler() before any record
    try:
        request = read_store(record.body)
    except MalformedMessage as err:
        # No retry can fix it: back on the queue at once, so it reaches the DLQ in seconds.
        logger.error("malformed store message: it goes to the dead-letter queue", extra={"problem": str(err)})
        delay_redelivery(aws("sqs"), record.event_source_arn, record.receipt_handle, 1)
        raise Deferred from err
    try:
        storer().store(
            request.job_id,
            request.prediction_id,
            count,
            remaining_seconds=context.get_remaining_time_in_millis() / 1000,
            owner=context.aws_request_id,
        )
    except CopyInProgress as busy:
        # Not a failure of this message: come back when the running copy's lease is over (real time).
        delay_redelivery(aws("sqs"), record.event_source_arn, record.receipt_handle, busy.seconds_left + 1)
        raise Deferred from busy
    except Exception as err:  # the copy logged why; SQS delivers it again after the back-off
        delay = backoff_seconds(count, base=20)
        scale = store_settings().retry_delay_scale
        delay_redelivery(aws("sqs"), record.event_source_arn, record.receipt_handle, delay, scale=scale)
        raise Deferred from err


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    _invocation.context = context
    return partial_batch(event, record_handler)


gc.freeze()  # init's objects stay for the container's life: no later collection scans them again
gc.enable()
