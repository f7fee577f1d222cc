"""ReconcileJobs: on a schedule, ask WaveSpeed about jobs that waited too long."""

from __future__ import annotations

import gc

# The imports make ~100k objects that live as long as the container (botocore's models, pydantic's
# validators): collecting while they are made only re-scans them (docs/benchmarks.md, cold start).
gc.disable()  # until the end of this module, which freezes what the imports made

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext

from loradrop.redaction import json_for_logs
from loradrop.services import reconciler

logger = Logger(json_serializer=json_for_logs)  # every log line is redacted
metrics = Metrics()


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return {"summary": reconciler().run(remaining_ms=context.get_remaining_time_in_millis)}


gc.freeze()  # init's objects stay for the container's life: no later collection scans them again
gc.enable()
