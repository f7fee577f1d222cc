"""ReconcileJobs: on a schedule, ask WaveSpeed about jobs that waited too long."""

from __future__ import annotations

from loradrop.startup import collector_paused

with collector_paused():
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
