"""Tracker.apply, rule by rule: every job state by every WaveSpeed task state, from a webhook and from the
reconciler. moto in process for DynamoDB, SQS and EventBridge; the task's state is given."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_lambda_powertools import Logger

from loradrop.models import TERMINAL_STATUSES, JobStatus, Task
from loradrop.redaction import json_for_logs
from loradrop.settings import ReconcileSettings
from loradrop.tracking import Tracker
from tests.unit.conftest import World
from tests.unit.tables import job_in

Logger(json_serializer=json_for_logs)
TASK = "task-1"
OUTPUT = "https://d1.cloudfront.net/outputs/task-1/lora.safetensors"
RETRYABLE = (5003, "service unavailable")
FIX_INPUT = (1401, "invalid parameter")

# What a task's state does to a job waiting on it (SUBMITTED or TRAINING), with one attempt used of two.
ACTIVE_RULES: dict[str, tuple[str, JobStatus, str | None]] = {
    # task state: (outcome, job's new state, message queued)
    "created": ("unchanged", JobStatus.SUBMITTED, None),
    "completed": ("storing", JobStatus.STORING, "store"),
    "failed-retryable": ("resubmitted", JobStatus.RECEIVED, "intake"),
    "failed-fix-input": ("failed", JobStatus.FAILED, None),
    "timeout": ("resubmitted", JobStatus.RECEIVED, "intake"),
    "cancelled": ("failed", JobStatus.FAILED, None),
    "deleted": ("failed", JobStatus.FAILED, None),
    "completed-no-output": ("failed", JobStatus.FAILED, None),
    "something-new": ("unchanged", JobStatus.SUBMITTED, None),
}
TASK_STATES = ["processing", *ACTIVE_RULES]


def task(state: str) -> Task:
    status, code, error, outputs = state, None, None, [OUTPUT]
    if state.startswith("failed-"):
        status, (code, error) = "failed", RETRYABLE if state == "failed-retryable" else FIX_INPUT
    if state == "completed-no-output":
        status, outputs = "completed", []
    return Task(id=TASK, model="m", status=status, code=code, error=error, outputs=outputs)


@pytest.fixture
def environment() -> dict[str, str]:
    return {"MAX_ATTEMPTS": "2"}


@pytest.fixture
def world(world: World) -> World:
    """The world, its tracker unable to reach WaveSpeed."""
    settings = world.settings(ReconcileSettings)
    world.tracker = Tracker(jobs=world.jobs, sqs=world.sqs, wavespeed=_no_wavespeed, settings=settings)
    return world


def _no_wavespeed() -> Any:
    raise AssertionError("apply() acts on the state it is given; it must not ask WaveSpeed")


def queued(world: World) -> dict[str, list[dict[str, Any]]]:
    found = {}
    for name, url in (("intake", world.queues.intake), ("store", world.queues.store)):
        answer = world.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
        found[name] = [json.loads(m["Body"]) for m in answer.get("Messages", [])]
    return found


@pytest.mark.parametrize("active", [JobStatus.SUBMITTED, JobStatus.TRAINING])
@pytest.mark.parametrize("state", list(ACTIVE_RULES))
def test_a_waiting_job_follows_its_task(world: World, active: JobStatus, state: str) -> None:
    outcome, status, message = ACTIVE_RULES[state]
    job = job_in(world.jobs, active)
    moved, said = world.tracker.apply(job, task(state), by="webhook")
    expected_status = active if status is JobStatus.SUBMITTED else status
    assert (said, moved.status) == (outcome, expected_status)
    stored = world.jobs.get(job.job_id)
    assert stored is not None
    assert stored.status is expected_status
    messages = queued(world)
    assert messages["store"] == ([{"job_id": job.job_id, "prediction_id": TASK}] if message == "store" else [])
    assert messages["intake"] == ([{"job_id": job.job_id, "action": "resubmit"}] if message == "intake" else [])
    if expected_status is JobStatus.FAILED:
        assert stored.error_code  # a code and a reason a user can act on
        assert stored.error


def test_processing_moves_a_submitted_job_to_training_once(world: World) -> None:
    job = job_in(world.jobs, JobStatus.SUBMITTED)
    moved, said = world.tracker.apply(job, task("processing"), by="webhook")
    assert (said, moved.status) == ("training", JobStatus.TRAINING)
    again, said = world.tracker.apply(moved, task("processing"), by="webhook")
    assert (said, again.status) == ("unchanged", JobStatus.TRAINING)


def test_the_last_attempt_fails_instead_of_resubmitting(world: World) -> None:
    job = job_in(world.jobs, JobStatus.TRAINING, attempts=2)  # 2 of 2 used
    moved, said = world.tracker.apply(job, task("failed-retryable"), by="reconciler")
    assert (said, moved.status, moved.error_code) == ("failed", JobStatus.FAILED, "5003")
    assert queued(world)["intake"] == []


@pytest.mark.parametrize(
    "status",
    [JobStatus.RECEIVED, JobStatus.SUBMITTING, *sorted(TERMINAL_STATUSES, key=lambda s: s.value)],
)
@pytest.mark.parametrize("state", TASK_STATES)
def test_jobs_not_waiting_on_the_task_are_left_alone(world: World, status: JobStatus, state: str) -> None:
    job = job_in(world.jobs, status)
    moved, said = world.tracker.apply(job, task(state), by="reconciler")
    assert (said, moved.status) == ("unchanged", status)
    assert world.jobs.get(job.job_id).status is status  # type: ignore[union-attr]
    assert queued(world) == {"intake": [], "store": []}


def test_a_task_that_is_not_the_jobs_changes_nothing(world: World) -> None:
    job = job_in(world.jobs, JobStatus.SUBMITTED)
    other = task("completed").model_copy(update={"id": "someone-elses"})
    moved, said = world.tracker.apply(job, other, by="webhook")
    assert (said, moved.status) == ("unchanged", JobStatus.SUBMITTED)


@pytest.mark.parametrize("by", ["webhook", "reconciler"])
def test_a_storing_job_is_restarted_only_by_the_reconciler(world: World, by: str) -> None:
    job = job_in(world.jobs, JobStatus.STORING)
    moved, said = world.tracker.apply(job, task("completed"), by=by)
    if by == "webhook":  # a repeated webhook while the copy runs
        assert (said, queued(world)["store"]) == ("unchanged", [])
    else:  # the store message was lost, or its copy died: queue it again, counted
        assert said == "store re-queued"
        assert moved.store_requeues == 1
        assert queued(world)["store"] == [{"job_id": job.job_id, "prediction_id": TASK}]


def test_a_live_copy_lease_is_left_alone_and_too_many_restarts_end_the_job(world: World) -> None:
    leased = job_in(world.jobs, JobStatus.STORING, store_lease_until="2999-01-01T00:00:00.000Z")
    assert world.tracker.apply(leased, task("completed"), by="reconciler")[1] == "copy running"
    world.jobs.release_lease(leased, note="copy attempt failed: AccessDenied on PutObject")
    world.jobs.take_lease(leased.job_id, "copy-1", "2999-01-01T00:00:00.000Z")  # the next copy, still running
    for _ in range(3):
        world.jobs._move(leased.job_id, {JobStatus.STORING}, JobStatus.STORING, count="store_requeues")
    # a copy that holds the lease is never ended under it, however often copies were restarted
    worn = world.jobs.get(leased.job_id)
    assert worn is not None
    assert (
        world.tracker.apply(worn.model_copy(update={"store_lease_until": None}), task("completed"), by="reconciler")[1]
        == "unchanged"
    )
    assert world.jobs.get(leased.job_id).status is JobStatus.STORING  # type: ignore[union-attr]
    # once its lease is over, the job ends with the last try's reason
    world.jobs.take_lease(leased.job_id, "copy-1", "2000-01-01T00:00:00.000Z")  # a lease that ran out
    moved, said = world.tracker.apply(world.jobs.get(leased.job_id), task("completed"), by="reconciler")
    assert (said, moved.status, moved.error_code) == ("failed", JobStatus.FAILED, "STORE_FAILED")
    assert "AccessDenied on PutObject" in (moved.error or "")  # the last try's reason, quoted
