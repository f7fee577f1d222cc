"""PublishEvents: the jobs table's change stream → one EventBridge event per job end."""

from __future__ import annotations

from loradrop.startup import collector_paused

with collector_paused():
    from typing import Any

    from aws_lambda_powertools import Logger, Metrics
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from loradrop.events import ends_in
    from loradrop.redaction import json_for_logs
    from loradrop.services import event_publisher

    logger = Logger(json_serializer=json_for_logs)  # every log line is redacted
    metrics = Metrics()


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    failed = event_publisher().publish(ends_in(event.get("Records", [])))
    # Lambda retries the shard from the first end not published; what came before it is not sent again.
    return {"batchItemFailures": [{"itemIdentifier": failed}] if failed else []}
