"""StoreWeights: store-queue messages → weights streamed into S3 → COMPLETED."""

from __future__ import annotations

from loradrop.startup import collector_paused

with collector_paused():
    from typing import Any

    from aws_lambda_powertools import Logger, Metrics
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from loradrop.queues import QueueRecord, partial_batch
    from loradrop.redaction import json_for_logs
    from loradrop.services import aws, storer

    logger = Logger(json_serializer=json_for_logs)  # every log line is redacted
    metrics = Metrics()


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    def store(record: QueueRecord) -> None:  # a copy's lease is this invocation's
        storer().store_message(record, remaining_ms=context.get_remaining_time_in_millis, owner=context.aws_request_id)

    return partial_batch(event, store, lambda: aws("sqs"), queue="store")
