"""The jobs table as template.yaml declares it, and jobs put in it, for unit tests against moto in process."""

from __future__ import annotations

from functools import cache
from typing import Any

from loradrop.job import HistoryEntry, Job, utc_now
from loradrop.jobs import JobStore
from loradrop.models import JobStatus
from loradrop_local.aws.cloudformation import load_template


@cache
def _jobs_table() -> dict[str, Any]:
    """The table's properties, read once: parsing template.yaml takes some 60 ms, and most tests create the table."""
    properties: dict[str, Any] = load_template()["Resources"]["JobsTable"]["Properties"]
    return properties


def create_jobs_table(client: Any, name: str = "jobs", *, stream: bool = False) -> None:
    table = _jobs_table()
    client.create_table(
        TableName=name,
        AttributeDefinitions=table["AttributeDefinitions"],
        KeySchema=table["KeySchema"],
        GlobalSecondaryIndexes=table["GlobalSecondaryIndexes"],
        BillingMode="PAY_PER_REQUEST",
        **({"StreamSpecification": {"StreamEnabled": True} | table["StreamSpecification"]} if stream else {}),
    )


def job_in(
    jobs: JobStore, status: JobStatus, *, prediction_id: str = "task-1", attempts: int = 1, **fields: Any
) -> Job:
    """Job ana-1 of uploads/ana.zip, already in `status` with one history entry."""
    now = utc_now()
    job = Job(
        job_id="ana-1",
        status=status,
        source_bucket="uploads",
        source_key="uploads/ana.zip",
        prediction_id=prediction_id,
        attempts=attempts,
        created_at=now,
        updated_at=now,
        history=[HistoryEntry(status=status.value, at=now)],
        **fields,
    )
    jobs.claim(job)
    return job
