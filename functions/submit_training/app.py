"""SubmitTraining: S3 upload notifications (via the intake queue, or bare) → WaveSpeed tasks."""

from __future__ import annotations

from loradrop.startup import collector_paused

with collector_paused():
    from typing import Any

    from aws_lambda_powertools import Logger, Metrics
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from loradrop.intake import IntakeBatch
    from loradrop.queues import partial_batch
    from loradrop.redaction import json_for_logs
    from loradrop.services import aws, submitter
    from loradrop.settings import submit_settings

    logger = Logger(json_serializer=json_for_logs)  # every log line is redacted
    metrics = Metrics()


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    batch = IntakeBatch(submitter, submit_settings(), context.get_remaining_time_in_millis)
    jobs = batch.uploads_in(event)  # a bare S3 event (e.g. sam local invoke)
    if jobs is not None:
        return {"jobs": [{"job_id": job.job_id, "status": job.status.value} for job in jobs]}
    return partial_batch(event, batch.handle, lambda: aws("sqs"), queue="intake")
