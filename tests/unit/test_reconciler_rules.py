"""The reconciler on a busy, messy table, rule by rule: every stale job gets its turn, an odd item stops nothing,
a failed listing reports no false "all clear", only WaveSpeed's own word (twice) says a task is gone, a running copy
is never ended under its lease, and a task of an earlier attempt is never forgotten. moto in process, a fake
WaveSpeed, the clock passed in, production timings."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aws_lambda_powertools import Logger, Metrics

from loradrop.deadline import Deadline
from loradrop.job import Job, iso, url_digest
from loradrop.models import JobStatus, Task
from loradrop.redaction import json_for_logs
from loradrop.tracking import JobNotFound
from tests.unit.conftest import World

Logger(json_serializer=json_for_logs)
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
MODEL = "wavespeed-ai/flux-dev-lora-trainer"
OUTPUT = "https://d1.cloudfront.net/outputs/t/lora.safetensors"


@pytest.fixture
def environment() -> dict[str, str]:
    # Every run looks at every job here (in AWS a job is first looked at after 15 min), five of a state at most.
    return {"RECONCILE_AFTER_SECONDS": "0", "RECONCILE_BATCH_LIMIT": "5"}


@pytest.fixture
def world(world: World) -> World:
    world.clock.now = NOW
    return world


def run(world: World, after: timedelta = timedelta(0)) -> dict[str, int]:
    world.clock.now = NOW + after
    Metrics().clear_metrics()
    summary: dict[str, int] = world.reconciler.run(now=NOW + after)
    return summary


def job(world: World, job_id: str, status: JobStatus, task: str | None, **fields: Any) -> Job:
    at = iso(fields.pop("at", NOW - timedelta(hours=1)))
    values: dict[str, Any] = {"attempts": 1, "history": [{"status": status.value, "at": at}]} | fields
    item = Job(
        job_id=job_id,
        status=status,
        source_bucket="uploads",
        source_key=f"uploads/{job_id}.zip",
        prediction_id=task,
        submit_started_at=at,
        created_at=at,
        updated_at=at,
        **values,
    )
    world.jobs.claim(item)
    return item


def metric(name: str) -> list[float] | None:
    found = Metrics().metric_set.get(name)
    return list(found["Value"]) if found else None


# ----- every stale job gets its turn -----
def test_more_stale_jobs_than_a_runs_batch_are_all_checked_within_a_few_runs(world: World) -> None:
    # Given 12 jobs waiting on tasks still training, oldest first, and a batch limit of 5 per state
    for i in range(12):
        job(world, f"j{i:02d}", JobStatus.TRAINING, f"t{i:02d}", at=NOW - timedelta(hours=12 - i))
        world.wavespeed.tasks[f"t{i:02d}"] = Task(id=f"t{i:02d}", status="processing")
    # When the reconciler runs three times (each looks at 5; a job left as it was goes to the back)
    for minute in range(3):
        run(world, timedelta(minutes=minute))
    # Then every job was asked about, none twice before all had their turn
    assert sorted(set(world.wavespeed.gets)) == [f"t{i:02d}" for i in range(12)]
    assert world.wavespeed.gets[:12] == [f"t{i:02d}" for i in range(12)]
    assert world.jobs.get("j11").checked_at == iso(NOW + timedelta(minutes=2))


# ----- one odd item stops nothing -----
@pytest.mark.parametrize(
    ("attribute", "value", "readable"),
    [
        ("created_at", {"S": "yesterday"}, True),
        ("created_at", {"S": "2026-11-25T09:00:00"}, True),  # no zone
        ("history", {"S": "not a list"}, False),
        ("attempts", {"S": "many"}, False),
        ("params", {"L": [{"S": "not a map"}]}, False),
    ],
)
def test_an_odd_item_among_healthy_ones_is_counted_and_the_pass_goes_on(
    world: World, attribute: str, value: dict[str, Any], readable: bool
) -> None:
    # Given a job whose item was edited by hand (or by an older version), between two healthy ones
    job(world, "a-healthy", JobStatus.SUBMITTED, "ta", at=NOW - timedelta(hours=3))
    job(world, "b-odd", JobStatus.SUBMITTED, "tb", at=NOW - timedelta(hours=2))
    job(world, "c-healthy", JobStatus.SUBMITTED, "tc", at=NOW - timedelta(hours=1))
    world.db.update_item(
        TableName="jobs",
        Key={"job_id": {"S": "b-odd"}},
        UpdateExpression="SET #a = :v",
        ExpressionAttributeNames={"#a": attribute},
        ExpressionAttributeValues={":v": value},
    )
    for task in ("ta", "tb", "tc"):
        world.wavespeed.tasks[task] = Task(id=task, status="completed", outputs=[OUTPUT])
    # When the reconciler runs
    summary = run(world, timedelta(minutes=1))
    # Then both healthy jobs moved on, and the odd one was counted (the alarm on ReconcileErrors tells a
    # person): checked all the same if it can be read, else sent to the back of its queue
    assert world.jobs.get("a-healthy").status is JobStatus.STORING
    assert world.jobs.get("c-healthy").status is JobStatus.STORING
    assert metric("ReconcileErrors") == [1.0]
    odd = world.db.get_item(TableName="jobs", Key={"job_id": {"S": "b-odd"}})["Item"]
    if readable:
        assert summary == {"storing": 3}
        assert odd["status"]["S"] == "STORING"
    else:
        assert summary == {"storing": 2, "error": 1}
        assert (odd["status"]["S"], odd["updated_at"]["S"]) == ("SUBMITTED", iso(NOW + timedelta(minutes=1)))


def test_a_failed_listing_reports_no_oldest_age_rather_than_zero(world: World) -> None:
    job(world, "waiting", JobStatus.TRAINING, "t1", at=NOW - timedelta(hours=5))
    world.wavespeed.tasks["t1"] = Task(id="t1", status="processing")
    run(world)
    assert metric("OldestWaitingJobAgeSeconds") == [5 * 3600.0]
    original = world.jobs.stale_keys

    def broken(status: JobStatus, before: str, limit: int) -> Iterator[tuple[str, str]]:
        if status is JobStatus.SUBMITTED:
            raise RuntimeError("ProvisionedThroughputExceededException")
        return original(status, before, limit)

    world.jobs.stale_keys = broken
    summary = run(world, timedelta(minutes=1))
    assert summary["error"] == 1
    assert metric("OldestWaitingJobAgeSeconds") is None  # missing data: the stuck-job alarm treats it as a problem
    assert metric("ReconcileErrors") == [1.0]


def test_the_run_stops_in_time_to_flush_its_metrics(world: World) -> None:
    # Given three jobs whose checks take 5 s each, and 20 s left in the invocation (10 s kept for the flush)
    world.clock.elapsed = 0.0
    world.wavespeed.request_seconds = 5.0
    for i in range(3):
        job(world, f"j{i}", JobStatus.TRAINING, f"t{i}")
        world.wavespeed.tasks[f"t{i}"] = Task(id=f"t{i}", status="processing")
    original = world.wavespeed.get_result

    def slow(task_id: str, deadline: Deadline | None = None) -> Task:
        task = original(task_id, deadline)  # 5 s of the run's time
        assert deadline is not None
        assert deadline.remaining() >= 0
        return task

    world.wavespeed.get_result = slow
    summary = world.reconciler.run(now=NOW, remaining_ms=lambda: 20_000)
    # Then two were checked and the third waits for the next run
    assert summary == {"unchanged": 2, "left for the next run": 1}
    assert world.wavespeed.gets == ["t0", "t1"]


# ----- only WaveSpeed says a task is gone -----
@pytest.mark.parametrize("status", [JobStatus.SUBMITTED, JobStatus.TRAINING, JobStatus.STORING])
def test_a_task_is_gone_only_when_wavespeed_says_so_on_runs_minutes_apart(world: World, status: JobStatus) -> None:
    job(world, "j", status, "t")
    world.wavespeed.gone.add("t")
    assert run(world) == {"task not found, confirming": 1}
    assert run(world, timedelta(minutes=2)) == {"task not found, confirming": 1}
    ended = world.jobs.get("j")
    assert (ended.status, ended.task_missing_since) == (status, iso(NOW))
    assert run(world, timedelta(minutes=6)) == {"failed": 1}
    ended = world.jobs.get("j")
    assert (ended.status, ended.error_code) == (JobStatus.FAILED, "TASK_GONE")
    assert "loradrop retry j" in ended.error


def test_a_404_in_wavespeeds_shape_is_not_its_word_while_its_history_lists_the_task(world: World) -> None:
    # Given a gateway answering 404 with {"message": "Not Found"} while the task trains on at WaveSpeed
    job(world, "j", JobStatus.TRAINING, "t")
    world.wavespeed.gone.add("t")
    world.wavespeed.listed_anyway.add("t")
    assert run(world) == {"task not found, confirming": 1}
    # Then, minutes later, the history (which lists the task) says the 404s were not WaveSpeed's word
    assert run(world, timedelta(minutes=6)) == {"unreachable": 1}
    assert run(world, timedelta(hours=5)) == {"unreachable": 1}
    assert world.jobs.get("j").status is JobStatus.TRAINING
    # and if it goes on for the whole settle deadline, the job ends: no job waits on a 404 forever
    assert run(world, timedelta(days=1, minutes=1)) == {"failed": 1}
    assert world.jobs.get("j").error_code == "TASK_GONE"


def test_a_proxys_404_page_is_never_wavespeeds_word(world: World) -> None:
    job(world, "j", JobStatus.TRAINING, "t")
    world.wavespeed.proxy_404.add("t")
    for minute in range(0, 3 * 24 * 60, 240):  # three days of runs
        assert run(world, timedelta(minutes=minute)) == {"unreachable": 1}
    assert world.jobs.get("j").status is JobStatus.TRAINING


def test_one_404_between_answers_is_forgotten(world: World) -> None:
    job(world, "j", JobStatus.TRAINING, "t")
    world.wavespeed.gone.add("t")
    run(world)
    world.wavespeed.gone.clear()
    world.wavespeed.tasks["t"] = Task(id="t", status="processing")
    assert run(world, timedelta(minutes=6)) == {"unchanged": 1}
    assert world.jobs.get("j").task_missing_since is None
    world.wavespeed.gone.add("t")
    assert run(world, timedelta(minutes=12)) == {"task not found, confirming": 1}  # a new first time


def test_a_task_near_wavespeeds_deletion_is_gone_on_the_first_404(world: World) -> None:
    job(world, "j", JobStatus.TRAINING, "t", at=NOW - timedelta(days=6, hours=13))
    world.wavespeed.gone.add("t")
    assert run(world) == {"failed": 1}
    assert world.jobs.get("j").error_code == "TASK_GONE"


def test_a_copy_holding_its_lease_is_never_ended_under_it(world: World) -> None:
    lease = iso(datetime.now(UTC) + timedelta(minutes=10))  # leases are stamped with the real clock
    job(world, "j", JobStatus.STORING, "t", store_lease_until=lease)
    world.wavespeed.gone.add("t")
    for minute in (0, 6, 12):
        assert run(world, timedelta(minutes=minute)) == {"copy running": 1}
    assert world.jobs.get("j").status is JobStatus.STORING
    assert world.wavespeed.gets == []


# ----- tasks of earlier attempts -----
LINK_1 = "https://uploads.s3.amazonaws.com/uploads/ana.zip?versionId=v1&X-Amz-Signature=first"
LINK_2 = "https://uploads.s3.amazonaws.com/uploads/ana.zip?versionId=v1&X-Amz-Signature=second"


def two_attempt_job(world: World, status: JobStatus, job_id: str = "j", **fields: Any) -> Job:
    """A job whose first attempt (LINK_1) was proven lost, then a second one (LINK_2) sent."""
    at = iso(NOW - timedelta(hours=1))
    history = [
        {"status": "RECEIVED", "at": at},
        {"status": "SUBMITTING", "at": at, "link": url_digest(LINK_1)},
        {"status": "RECEIVED", "at": at, "note": "nothing was created: submitting again"},
        {"status": "SUBMITTING", "at": at, "link": url_digest(LINK_2)},
    ]
    task = fields.pop("task", None)
    return job(world, job_id, status, task, history=history, submit_url_sha256=url_digest(LINK_2), **fields)


def webhook(world: World, task: Task, job_hint: str | None = "j") -> tuple[Job, str]:
    world.wavespeed.tasks[task.id] = task
    result: tuple[Job, str] = world.tracker.on_webhook(task, job_hint)
    return result


@pytest.mark.parametrize(
    ("status", "error_code"),
    [
        (JobStatus.SUBMITTED, None),
        (JobStatus.TRAINING, None),
        (JobStatus.COMPLETED, None),
        (JobStatus.FAILED, "STORE_FAILED"),  # its own task completed: the copy is what failed
    ],
)
def test_a_verified_webhook_for_an_earlier_attempts_task_is_recorded_never_404(
    world: World, status: JobStatus, error_code: str | None
) -> None:
    two_attempt_job(world, status, task="second-task", error_code=error_code)
    stray = Task(id="first-task", status="completed", outputs=[OUTPUT], input={"data": LINK_1})
    _, outcome = webhook(world, stray)
    stored = world.jobs.get("j")
    assert outcome == "stray task recorded"
    assert (stored.status, stored.stray_tasks, stored.attempts) == (status, ["first-task"], 2)
    assert metric("StrayTasks") == [1.0]
    assert webhook(world, stray)[1] == "unchanged"  # WaveSpeed's retry of the same delivery
    assert world.jobs.get("j").attempts == 2


@pytest.mark.parametrize("error_code", ["SUBMIT_UNSETTLED", "SUBMIT_FAILED", "5003", "1401", "TASK_GONE"])
def test_a_failed_job_whose_earlier_task_turns_up_completed_stores_its_weights(world: World, error_code: str) -> None:
    # Given a job that failed without ever storing weights (its settling gave up, its last task failed, ...)
    two_attempt_job(world, JobStatus.FAILED, error_code=error_code, error="it failed")
    # When its first attempt's task reports in, completed (its weights are the user's paid output)
    stray = Task(id="first-task", status="completed", outputs=[OUTPUT], input={"data": LINK_1})
    _, outcome = webhook(world, stray)
    # Then the job goes on to store them, counted as a task that exists
    stored = world.jobs.get("j")
    assert outcome == "failed job revived, storing"
    assert (stored.status, stored.prediction_id, stored.error_code, stored.attempts) == (
        JobStatus.STORING,
        "first-task",
        None,
        2,
    )
    assert metric("StrayTasks") == [1.0]  # loradrop had given up on it: a person looks why


def test_a_job_given_up_as_task_gone_is_revived_when_its_task_reports_in_completed(world: World) -> None:
    job(world, "j", JobStatus.FAILED, "t", error_code="TASK_GONE", error="WaveSpeed no longer knows task t")
    world.wavespeed.tasks["t"] = Task(id="t", status="completed", outputs=[OUTPUT])
    _, outcome = world.tracker.on_webhook(world.wavespeed.tasks["t"])
    stored = world.jobs.get("j")
    assert outcome == "failed job revived, storing"
    assert (stored.status, stored.attempts) == (JobStatus.STORING, 1)  # the same task: not counted twice


def test_without_the_hint_the_job_is_found_from_the_versioned_link(world: World) -> None:
    from loradrop.job import job_id_for

    # Given the job of s3://uploads/uploads/ana.zip version v1 (a versioned bucket's notification names it)
    job_id = job_id_for("uploads", "uploads/ana.zip", "v1", None)
    two_attempt_job(world, JobStatus.TRAINING, job_id, task="second-task")
    # When its first attempt's task reports in through a URL whose job hint was dropped
    stray = Task(id="first-task", status="processing", input={"data": LINK_1})
    _, outcome = webhook(world, stray, job_hint=None)
    # Then the link itself leads to the job
    assert outcome == "stray task recorded"
    assert world.jobs.get(job_id).stray_tasks == ["first-task"]


def test_an_earlier_attempts_task_is_taken_by_a_job_waiting_to_submit_again(world: World) -> None:
    # Given a job back in RECEIVED after its first attempt was (wrongly) proven lost: no POST in flight
    at = iso(NOW - timedelta(hours=1))
    history = [
        {"status": "RECEIVED", "at": at},
        {"status": "SUBMITTING", "at": at, "link": url_digest(LINK_1)},
        {"status": "RECEIVED", "at": at, "note": "nothing was created: submitting again"},
    ]
    job(world, "j", JobStatus.RECEIVED, None, history=history, submit_url_sha256=url_digest(LINK_1), attempts=0)
    # When the first attempt's task reports in, completed
    stray = Task(id="first-task", status="completed", outputs=[OUTPUT], input={"data": LINK_1})
    _, outcome = webhook(world, stray)
    # Then the job takes it instead of paying for a new one, and goes on to store its weights
    stored = world.jobs.get("j")
    assert outcome == "earlier task taken, storing"
    assert (stored.status, stored.prediction_id, stored.attempts) == (JobStatus.STORING, "first-task", 1)


def test_a_task_of_no_attempt_of_the_hinted_job_is_still_not_found(world: World) -> None:
    two_attempt_job(world, JobStatus.TRAINING, task="second-task")
    foreign = Task(id="other", status="completed", input={"data": "https://elsewhere.test/x.zip"})
    with pytest.raises(JobNotFound):
        webhook(world, foreign)
    assert world.jobs.get("j").stray_tasks == []


def test_a_recorded_stray_that_completes_after_its_job_failed_is_stored(world: World) -> None:
    # Given a job whose first attempt's task was recorded as a stray while it trained, then the job failed
    two_attempt_job(world, JobStatus.TRAINING, task="second-task")
    training = Task(id="first-task", status="processing", input={"data": LINK_1})
    assert webhook(world, training)[1] == "stray task recorded"
    world.jobs.end("j", {JobStatus.TRAINING}, JobStatus.FAILED, "1401", "x")
    # When the stray reports in, completed
    completed = training.model_copy(update={"status": "completed", "outputs": [OUTPUT]})
    _, outcome = webhook(world, completed)
    # Then its weights are stored, and it is not counted twice
    stored = world.jobs.get("j")
    assert outcome == "failed job revived, storing"
    assert (stored.status, stored.prediction_id, stored.attempts) == (JobStatus.STORING, "first-task", 2)


def test_a_task_whose_get_leaves_out_its_input_is_counted_by_its_signed_link(world: World) -> None:
    # Given a job that ended SUBMIT_UNSETTLED: its attempt's task still counts as one that may exist
    two_attempt_job(world, JobStatus.FAILED, error_code="SUBMIT_UNSETTLED", error="unsettled")
    stored = world.jobs.get("j")
    # When that attempt's task reports in, completed, and WaveSpeed's GET answers without `input`
    world.wavespeed.tasks["late"] = Task(id="late", status="completed", outputs=[OUTPUT])
    signed = Task(id="late", status="completed", outputs=[OUTPUT], input={"data": LINK_2})
    _, outcome = world.tracker.on_webhook(signed, "j")
    # Then it is stored without being counted a second time
    revived = world.jobs.get("j")
    assert outcome == "failed job revived, storing"
    assert revived.attempts == stored.attempts == 1


def test_a_taken_tasks_history_is_read_around_its_own_creation(world: World) -> None:
    # Given a job that took its first attempt's task (created an hour before the second attempt's POST)
    created = NOW - timedelta(hours=2)
    job(world, "j", JobStatus.TRAINING, "first", at=NOW - timedelta(hours=1), task_created_at=iso(created))
    # When a gateway answers 404 in WaveSpeed's shape while WaveSpeed still lists the task
    world.wavespeed.gone.add("first")
    world.wavespeed.listed_anyway.add("first")
    run(world)
    assert run(world, timedelta(minutes=6)) == {"unreachable": 1}
    # Then the history was read around the task's own creation, not the job's latest POST
    assert world.wavespeed.listings[0].created_after == iso(created - timedelta(seconds=30))
