"""A job stays within DynamoDB's item limit and its event within EventBridge's, however long it lives."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from loradrop.job import EVENT_HISTORY, HISTORY_KEEP_LATEST, HISTORY_LIMIT, Job
from loradrop.jobs import JobStore
from loradrop.models import JobStatus, Task
from tests.unit.tables import create_jobs_table


@pytest.fixture
def jobs() -> Iterator[JobStore]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_jobs_table(client)
        yield JobStore(client, "jobs")


def new_job(store: JobStore) -> Job:
    now = "2026-11-25T09:00:00.000Z"
    job = Job(
        job_id="long-lived-000000000001",
        status=JobStatus.RECEIVED,
        source_bucket="b",
        source_key="uploads/a.zip",
        created_at=now,
        updated_at=now,
        history=[{"status": "RECEIVED", "at": now}],
    )
    store.claim(job)
    return job


def test_history_keeps_its_first_entry_every_move_every_task_and_the_latest_and_counts_the_rest(
    jobs: JobStore,
) -> None:
    job = new_job(jobs)
    jobs.begin_submission(job.job_id, found={}, params={}, warnings=[], link="L1", at=job.created_at)
    jobs.record_task(job.job_id, Task(id="task-1", status="created"))
    storing = jobs.start_storing(job.job_id).job
    for i in range(120):  # a job the reconciler touched for days
        jobs.requeue_store(job.job_id, f"touch {i} " + "x" * 200)
    stored = jobs.get(job.job_id)
    assert stored is not None
    assert storing is not None
    assert len(stored.history) <= HISTORY_LIMIT
    assert [e.status for e in stored.history[:4]] == ["RECEIVED", "SUBMITTING", "SUBMITTED", "STORING"]
    assert stored.history[3].note is None
    assert [e for e in stored.history if e.prediction_id] == [stored.history[2]]
    assert stored.history[2].prediction_id == "task-1"
    # when the job entered STORING is still known, after 120 notes within the state
    assert stored.entered(JobStatus.STORING) == storing.updated_at
    assert stored.history[-1].note.startswith("touch 119 ")
    assert [e.note[:9] for e in stored.history[-HISTORY_KEEP_LATEST:]][-3:] == [
        "touch 117",
        "touch 118",
        "touch 119",
    ]
    assert stored.history_omitted + len(stored.history) == 124
    assert stored.task_ids() == {"task-1"}


def test_event_detail_stays_far_below_eventbridges_limit() -> None:
    now = "2026-11-25T09:00:00.000Z"
    job = Job(
        job_id="huge",
        status=JobStatus.FAILED,
        source_bucket="b",
        source_key="uploads/a.zip",
        created_at=now,
        updated_at=now,
        error="e" * 100_000,
        warnings=["w" * 5_000] * 500,
        history=[{"status": "SUBMITTED", "at": now, "note": "n" * 1_000}] * 500,
    )
    detail = job.event_detail()
    assert len(json.dumps(detail)) < 64 * 1024
    assert len(detail["history"]) == EVENT_HISTORY
    assert detail["history_omitted"] == 500 - EVENT_HISTORY
    assert detail["error"].startswith("eee")
    assert detail["error"].endswith("…")
