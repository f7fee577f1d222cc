"""One table says which moves a job may make: the store refuses the rest, the README draws it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from pydantic import ValidationError

from loradrop.job import Job
from loradrop.jobs import JobPatch, JobStore, Moved
from loradrop.models import (
    ALLOWED_MOVES,
    TERMINAL_STATUSES,
    IllegalMove,
    JobStatus,
    Task,
    check_move,
    state_diagram,
)
from tests.unit.tables import create_jobs_table

README = Path(__file__).resolve().parents[2] / "README.md"
PAIRS = [(a, b) for a in JobStatus for b in JobStatus]


def test_the_readme_draws_the_table() -> None:
    (drawn,) = re.findall(r"```mermaid\n(.*?)\n```", README.read_text(), flags=re.DOTALL)
    assert drawn == state_diagram()


def test_terminal_states_end_and_every_other_state_can_end() -> None:
    for status in JobStatus:
        if status in TERMINAL_STATUSES - {JobStatus.FAILED}:
            assert ALLOWED_MOVES[status] == frozenset()
        elif status is not JobStatus.FAILED:
            assert ALLOWED_MOVES[status] & TERMINAL_STATUSES, status


@pytest.mark.parametrize(("source", "target"), PAIRS, ids=[f"{a.value}-{b.value}" for a, b in PAIRS])
def test_check_move_follows_the_table(source: JobStatus, target: JobStatus) -> None:
    if target in ALLOWED_MOVES[source]:
        check_move({source}, target)
    else:
        with pytest.raises(IllegalMove, match=f"from {source.value} to {target.value}"):
            check_move({source}, target)


@pytest.fixture
def store() -> Any:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_jobs_table(client)
        yield JobStore(client, "jobs")


def test_the_store_refuses_an_illegal_move_before_writing(store: JobStore) -> None:
    now = "2026-11-25T10:00:00.000Z"
    job = Job(
        job_id="ana-1",
        status=JobStatus.COMPLETED,
        source_bucket="b",
        source_key="uploads/ana.zip",
        created_at=now,
        updated_at=now,
    )
    store.claim(job)
    with pytest.raises(IllegalMove):
        store._move("ana-1", {JobStatus.COMPLETED}, JobStatus.RECEIVED)  # what no operation may ask
    unchanged = store.get("ana-1")
    assert unchanged is not None
    assert unchanged.status is JobStatus.COMPLETED
    assert unchanged.history == job.history


def _received(store: JobStore, job_id: str = "ana-1") -> Job:
    now = "2026-11-25T10:00:00.000Z"
    job = Job(
        job_id=job_id,
        status=JobStatus.RECEIVED,
        source_bucket="b",
        source_key="u/a.zip",
        created_at=now,
        updated_at=now,
        history=[{"status": "RECEIVED", "at": now}],
    )
    store.claim(job)
    return job


def test_a_refused_move_answers_with_the_job_as_it_stands_and_a_missing_job_with_none(store: JobStore) -> None:
    _received(store)
    begun = store.begin_submission("ana-1", found={}, params={"steps": 1000}, warnings=[], link="L1", at="t0")
    assert begun.done
    assert begun.job is not None
    assert (begun.job.status, begun.job.attempts, begun.job.submit_url_sha256) == (JobStatus.SUBMITTING, 1, "L1")
    # a second delivery finds it SUBMITTING: refused, and told how the job stands without reading it again
    again = store.begin_submission("ana-1", found={}, params={"steps": 1000}, warnings=[], link="L2", at="t1")
    assert not again.done
    assert again.job == store.get("ana-1")
    assert again.job is not None
    assert (again.job.status, again.job.attempts, again.job.submit_url_sha256) == (JobStatus.SUBMITTING, 1, "L1")
    assert store.start_training("nobody") == Moved(job=None, done=False)


def test_an_adoption_for_an_earlier_attempt_is_refused(store: JobStore) -> None:
    _received(store)
    first = store.begin_submission("ana-1", found={}, params={}, warnings=[], link="L1", at="t0").job
    assert first is not None
    store.submission_deferred(first, "not submitted, will retry: 429")
    store.begin_submission("ana-1", found={}, params={}, warnings=[], link="L2", at="t1")
    task = Task(id="task-1", status="created")
    stale = store.record_task("ana-1", task, note="task adopted", attempt_link="L1")
    assert not stale.done
    assert stale.job is not None
    assert (stale.job.status, stale.job.prediction_id) == (JobStatus.SUBMITTING, None)
    adopted = store.record_task("ana-1", task, note="task adopted", attempt_link="L2")
    assert adopted.done
    assert adopted.job is not None
    assert (adopted.job.status, adopted.job.prediction_id, adopted.job.attempts) == (JobStatus.SUBMITTED, "task-1", 1)
    assert [entry.link for entry in adopted.job.history if entry.link] == ["L1", "L2"]


def test_a_misspelled_attribute_is_refused_before_anything_is_written(store: JobStore) -> None:
    with pytest.raises(ValidationError, match="weight_uri"):
        JobPatch(weight_uri="s3://w/k")  # type: ignore[call-arg] - the point: not an attribute of a job


def test_only_the_lease_holder_releases_it_and_nobody_takes_it_while_held(store: JobStore) -> None:
    _received(store)
    store.begin_submission("ana-1", found={}, params={}, warnings=[], link="L1", at="t0")
    store.record_task("ana-1", Task(id="task-1", status="completed"))
    store.start_storing("ana-1")
    held = store.take_lease("ana-1", "copy-a", "2999-01-01T00:00:00.000Z")
    assert held.done
    taken = store.take_lease("ana-1", "copy-b", "2999-01-01T00:00:00.000Z")
    assert not taken.done
    assert taken.job is not None
    assert taken.job.store_lease_owner == "copy-a"
    assert not store.requeue_store("ana-1", "store re-queued").done  # a copy is running
    assert not store.end("ana-1", {JobStatus.STORING}, JobStatus.FAILED, "X", "x", unless_copying=True).done
    assert held.job is not None
    released = store.release_lease(held.job, "copy attempt failed: boom")
    assert released.done
    assert released.job is not None
    assert (released.job.store_lease_owner, released.job.store_lease_until) == (None, None)


def test_a_refused_move_on_an_item_too_odd_to_read_is_still_just_refused(store: JobStore) -> None:
    _received(store)
    # another tool wrote the row with a creation time that is not text: no Job reads it
    store._db.update_item(
        TableName="jobs",
        Key={"job_id": {"S": "ana-1"}},
        UpdateExpression="SET created_at = :odd",
        ExpressionAttributeValues={":odd": {"M": {"odd": {"BOOL": True}}}},
    )
    assert store.start_training("ana-1") == Moved(job=None, done=False)
    with pytest.raises(ValidationError):  # whoever needs the job meets the oddity where it reads it
        store.get("ana-1")
