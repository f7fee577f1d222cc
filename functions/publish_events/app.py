"""PublishEvents: the jobs table's change stream → one EventBridge event per job end."""

from __future__ import annotations

import gc

# The imports make ~100k objects that live as long as the container (botocore's models, pydantic's
# validators): collecting while they are made only re-scans them (docs/benchmarks.md, cold start).
gc.disable()  # until the end of this module, which freezes what the imports made

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


gc.freeze()  # init's objects stay for the container's life: no later collection scans them again
gc.enable()
