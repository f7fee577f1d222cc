"""How a job ends early: FAILED or REJECTED with a reason a user can act on, counted. Its event follows
from the table's change stream (`loradrop.events`), not from a second call here that a crash could skip."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from loradrop.jobs import Job, JobStore
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
    remove: Collection[str] = (),
    fields: dict[str, Any] | None = None,
    guard: str | None = None,
    guard_values: dict[str, Any] | None = None,
) -> Job | None:
    """Move a job to FAILED or REJECTED with a reason (and `fields` worth keeping, such as what an
    inspection found); None if it had moved on (or `guard` did not hold)."""
    reason = redact(reason)  # it may quote WaveSpeed, which may quote our presigned link
    logger.info("job ended", extra={"status": status.value, "error_code": code, "reason": reason})
    metrics.add_metric(name=f"Jobs{status.value.title()}", unit=MetricUnit.Count, value=1)
    return jobs.transition(
        job_id,
        expected,
        status,
        fields=(fields or {}) | {"error_code": code, "error": reason},
        attempts=attempts,
        remove=remove,
        guard=guard,
        guard_values=guard_values,
    )
