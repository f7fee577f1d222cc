"""How a job ends early: FAILED or REJECTED with a reason a user can act on, counted. Its event follows
from the table's change stream (`loradrop.events`), not from a second call here that a crash could skip."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from loradrop.jobs import JobStore, Moved
from loradrop.models import JobStatus
from loradrop.redaction import redact

logger = Logger(child=True)
metrics = Metrics()


def end_job(  # noqa: PLR0913, PLR0917 - a job ends with its store, id, states, code and reason
    jobs: JobStore,
    job_id: str,
    expected: Collection[JobStatus],
    status: JobStatus,
    code: str,
    reason: str,
    *,
    attempts: int = 0,
    found: dict[str, Any] | None = None,
    attempt_link: str | None = None,
    unless_copying: bool = False,
) -> Moved:
    """Move a job to FAILED or REJECTED with a reason (and `found`, what an inspection found worth keeping),
    logged and counted if it moved (see `JobStore.end` for the conditions)."""
    reason = redact(reason)  # it may quote WaveSpeed, which may quote our presigned link
    ended = jobs.end(
        job_id,
        expected,
        status,
        code,
        reason,
        attempts=attempts,
        found=found,
        attempt_link=attempt_link,
        unless_copying=unless_copying,
    )
    if ended.done:
        logger.info("job ended", extra={"status": status.value, "error_code": code, "reason": reason})
        metrics.add_metric(name=f"Jobs{status.value.title()}", unit=MetricUnit.Count, value=1)
    return ended
