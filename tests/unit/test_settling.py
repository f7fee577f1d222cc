"""How the reconciler settles an uncertain submission, rule by rule, at the production defaults
(30 min grace, one-day deadline): moto in process for DynamoDB and SQS, a fake WaveSpeed, and the
clock passed in, so every rule runs in milliseconds."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from aws_lambda_powertools import Logger
from moto import mock_aws

from loradrop.events import EventPublisher
from loradrop.jobs import Job, JobStore, iso, url_digest
from loradrop.models import JobStatus, Prediction
from loradrop.redaction import json_for_logs
from loradrop.settings import ReconcileSettings
from loradrop.tracking import Reconciler, Tracker
from loradrop.wavespeed import WaveSpeedError
from loradrop_local.dataset import training_zip
from tests.unit.tables import create_jobs_table

Logger(json_serializer=json_for_logs)  # the parent of the domain's child loggers, as each handler creates it
POSTED_AT = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
OUR_LINK = "https://uploads.s3.amazonaws.com/uploads/ana.zip?X-Amz-Signature=ours"
MODEL = "wavespeed-ai/flux-dev-lora-trainer"


class FakeWaveSpeed:
    """History pages and results as WaveSpeed would give them; records what was asked."""

    def __init__(self) -> None:
        self.tasks: dict[str, dict[str, Any]] = {}
        self.history_broken = False
        self.history_calls: list[dict[str, Any]] = []

    def add(
        self, task_id: str, *, link: str | None, status: str = "processing", in_history_input: bool = False
    ) -> None:
        self.tasks[task_id] = {"id": task_id, "model": MODEL, "status": status, "link": link, "hist": in_history_input}

    def list_predictions(self, **query: Any) -> tuple[list[Prediction], int]:
        self.history_calls.append(query)
        if self.history_broken:
            raise WaveSpeedError("history unavailable")
        items = [
            Prediction(id=t["id"], model=MODEL, status=t["status"], input={"data": t["link"]} if t["hist"] else None)
            for t in self.tasks.values()
        ]
        return items, len(items)

    def get_result(self, task_id: str) -> Prediction:
        t = self.tasks[task_id]
        return Prediction(id=task_id, model=MODEL, status=t["status"], input={"data": t["link"]} if t["link"] else None)


@pytest.fixture
def world() -> Iterator[dict[str, Any]]:
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        create_jobs_table(dynamodb)
        sqs = boto3.client("sqs", region_name="us-east-1")
        intake = sqs.create_queue(QueueName="intake")["QueueUrl"]
        store = sqs.create_queue(QueueName="store")["QueueUrl"]
        events = boto3.client("events", region_name="us-east-1")
        settings = ReconcileSettings.model_validate(
            {
                "JOBS_TABLE": "jobs",
                "EVENT_BUS_NAME": "default",
                "WAVESPEED_SECRET_ID": "unused",
                "STORE_QUEUE_URL": store,
                "INTAKE_QUEUE_URL": intake,
                # Every run looks at every job here; in AWS a job is first looked at after 15 min.
                "RECONCILE_AFTER_SECONDS": "0",
            }
        )
        jobs = JobStore(dynamodb, "jobs")
        publisher = EventPublisher(events, "default")
        wavespeed = FakeWaveSpeed()
        tracker = Tracker(jobs=jobs, sqs=sqs, events=publisher, wavespeed=lambda: wavespeed, settings=settings)  # type: ignore[arg-type,return-value]
        reconciler = Reconciler(tracker, jobs, publisher, lambda: wavespeed, settings)  # type: ignore[arg-type,return-value]
        yield {"jobs": jobs, "ws": wavespeed, "reconciler": reconciler, "sqs": sqs, "intake": intake}


def uncertain_job(jobs: JobStore, job_id: str = "ana-000000000001", *, lost: int = 0) -> Job:
    """A job whose POST at POSTED_AT got no usable answer."""
    at = iso(POSTED_AT)
    job = Job(
        job_id=job_id,
        status=JobStatus.SUBMITTING,
        source_bucket="uploads",
        source_key="uploads/ana.zip",
        params={"model": MODEL},
        attempts=1,
        lost_submissions=lost,
        error_code="SUBMIT_UNCERTAIN",
        submit_started_at=at,
        submit_url_sha256=url_digest(OUR_LINK if job_id.endswith("1") else f"{OUR_LINK}-{job_id}"),
        created_at=at,
        updated_at=at,
    )
    jobs.claim(job)
    return job


def run(world: dict[str, Any], after: timedelta) -> dict[str, int]:
    summary: dict[str, int] = world["reconciler"].run(now=POSTED_AT + after)
    return summary


def resubmissions(world: dict[str, Any]) -> list[dict[str, Any]]:
    answer = world["sqs"].receive_message(QueueUrl=world["intake"], MaxNumberOfMessages=10)
    return [json.loads(m["Body"]) for m in answer.get("Messages", [])]


def test_a_post_that_may_still_be_waiting_is_left_alone(world: dict[str, Any]) -> None:
    uncertain_job(world["jobs"])
    assert run(world, timedelta(seconds=30)) == {"submitting": 1}
    assert world["ws"].history_calls == []


def test_an_empty_history_proves_nothing_only_after_the_grace_period(world: dict[str, Any]) -> None:
    job = uncertain_job(world["jobs"])
    assert run(world, timedelta(minutes=29)) == {"waiting for history": 1}
    (query,) = world["ws"].history_calls
    # the window brackets the POST (2 min of clock slack each side) for the job's model
    assert query["model"] == MODEL
    assert query["created_after"] == "2026-11-25T08:58:00.000Z"
    assert query["created_before"] == "2026-11-25T09:03:15.000Z"  # + 10 s connect + 60 s read + 5 s + 2 min
    assert run(world, timedelta(minutes=31)) == {"resubmitted (nothing was created)": 1}
    moved = world["jobs"].get(job.job_id)
    assert moved.status is JobStatus.RECEIVED
    assert moved.attempts == 0  # nothing was created: no task may exist
    assert moved.lost_submissions == 1
    assert "history shows no task from this upload" in moved.history[-1]["note"]
    assert resubmissions(world) == [{"job_id": job.job_id, "action": "resubmit"}]


def test_the_third_lost_submission_ends_the_job_with_nothing_billed(world: dict[str, Any]) -> None:
    job = uncertain_job(world["jobs"], lost=2)
    assert run(world, timedelta(hours=1)) == {"failed": 1}
    ended = world["jobs"].get(job.job_id)
    assert (ended.status, ended.error_code, ended.attempts) == (JobStatus.FAILED, "SUBMIT_FAILED", 0)
    assert f"loradrop retry {job.job_id}" in ended.error


@pytest.mark.parametrize("named_by", ["result", "history"])
def test_a_task_whose_input_is_our_link_is_adopted(world: dict[str, Any], named_by: str) -> None:
    job = uncertain_job(world["jobs"])
    world["ws"].add("someone-elses", link="https://other/zip")
    world["ws"].add("ours", link=OUR_LINK, in_history_input=named_by == "history")
    if named_by == "history":  # the GET does not carry input; the history item's does
        world["ws"].tasks["ours"]["hist"] = True
    assert run(world, timedelta(minutes=5)) == {"adopted, training": 1}
    adopted = world["jobs"].get(job.job_id)
    assert (adopted.status, adopted.prediction_id, adopted.attempts) == (JobStatus.TRAINING, "ours", 1)
    assert adopted.error_code is None
    assert any(e.get("note") == "task adopted: found in WaveSpeed's prediction history" for e in adopted.history)


def test_tasks_owned_by_other_jobs_are_not_candidates(world: dict[str, Any]) -> None:
    other = uncertain_job(world["jobs"], "bob-000000000002")
    world["jobs"].transition(
        other.job_id, {JobStatus.SUBMITTING}, JobStatus.SUBMITTED, fields={"prediction_id": "bobs"}
    )
    world["ws"].add("bobs", link=None)  # would be ambiguous if it were not owned
    job = uncertain_job(world["jobs"])
    assert run(world, timedelta(minutes=31))["resubmitted (nothing was created)"] == 1
    assert world["jobs"].get(job.job_id).status is JobStatus.RECEIVED


def test_a_task_that_names_no_upload_waits_then_fails_with_what_to_check(world: dict[str, Any]) -> None:
    job = uncertain_job(world["jobs"])
    world["ws"].add("whose", link=None)
    assert run(world, timedelta(hours=2)) == {"ambiguous": 1}
    assert world["jobs"].get(job.job_id).status is JobStatus.SUBMITTING
    assert run(world, timedelta(hours=24, minutes=1)) == {"failed": 1}
    ended = world["jobs"].get(job.job_id)
    assert (ended.status, ended.error_code, ended.attempts) == (JobStatus.FAILED, "SUBMIT_UNSETTLED", 1)
    assert "whose" in ended.error
    assert "2026-11-25T08:58:00.000Z" in ended.error
    assert "s3://uploads/uploads/ana.zip" in ended.error


def test_an_unreadable_history_is_ambiguous_never_proof(world: dict[str, Any]) -> None:
    job = uncertain_job(world["jobs"])
    world["ws"].history_broken = True
    assert run(world, timedelta(hours=5)) == {"ambiguous": 1}
    assert resubmissions(world) == []
    assert run(world, timedelta(days=2)) == {"failed": 1}
    assert world["jobs"].get(job.job_id).error_code == "SUBMIT_UNSETTLED"


def test_one_broken_job_does_not_stop_the_run_and_time_running_out_does(world: dict[str, Any]) -> None:
    uncertain_job(world["jobs"], "aaa-000000000002")
    uncertain_job(world["jobs"], "bbb-000000000003")
    world["ws"].add("x", link=None)
    calls = {"n": 0}
    original = world["ws"].get_result

    def flaky(task_id: str) -> Prediction:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("unexpected answer")
        return original(task_id)  # type: ignore[no-any-return]

    world["ws"].get_result = flaky
    assert run(world, timedelta(hours=2)) == {"error": 1, "ambiguous": 1}
    summary = world["reconciler"].run(now=POSTED_AT + timedelta(hours=2), remaining_ms=lambda: 5_000)
    assert summary == {"left for the next run": 1}


def test_a_persons_retry_of_a_lost_submission_starts_the_count_again(world: dict[str, Any]) -> None:
    from loradrop.settings import SubmitSettings
    from loradrop.submission import Submitter

    # Given a job that ended SUBMIT_FAILED after three lost POSTs, its ZIP still in S3
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="uploads")
    s3.put_object(Bucket="uploads", Key="uploads/ana.zip", Body=training_zip())
    job = uncertain_job(world["jobs"], lost=2)
    assert run(world, timedelta(hours=1)) == {"failed": 1}
    settings = SubmitSettings.model_validate(
        {"JOBS_TABLE": "jobs", "EVENT_BUS_NAME": "default", "WAVESPEED_SECRET_ID": "x", "WEBHOOK_URL": "https://hook"}
    )
    submitted = Prediction(id="fresh-task", model=MODEL)
    wavespeed = type("Answering", (), {"submit_training": lambda self, model, body, url: submitted})()
    events = EventPublisher(boto3.client("events", region_name="us-east-1"), "default")
    submitter = Submitter(jobs=world["jobs"], s3=s3, events=events, wavespeed=lambda: wavespeed, settings=settings)
    # When a person retries it and WaveSpeed answers
    retried = submitter.retry(job.job_id)
    # Then it trains, and a later lost POST would again get its full count of chances
    assert retried is not None
    assert (retried.status, retried.prediction_id, retried.attempts) == (JobStatus.SUBMITTED, "fresh-task", 1)
    assert retried.lost_submissions == 0


def test_a_received_job_has_the_whole_deadline_from_when_it_entered_received(world: dict[str, Any]) -> None:
    # Given a job uploaded three days ago, failed, and retried by a person 40 minutes ago (back in RECEIVED)
    now = datetime.now(UTC)  # the store stamps its writes with the real clock
    uploaded = now - timedelta(days=3)
    retried = now - timedelta(minutes=40)
    job = Job(
        job_id="old-000000000009",
        status=JobStatus.RECEIVED,
        source_bucket="uploads",
        source_key="uploads/old.zip",
        created_at=iso(uploaded),
        updated_at=iso(retried),
        history=[
            {"status": "RECEIVED", "at": iso(uploaded)},
            {"status": "SUBMITTING", "at": iso(uploaded)},
            {"status": "FAILED", "at": iso(uploaded + timedelta(hours=1))},
            {"status": "RECEIVED", "at": iso(retried), "note": "retried by request after [5003]"},
            {"status": "RECEIVED", "at": iso(retried + timedelta(minutes=1)), "note": "not submitted, will retry"},
        ],
    )
    world["jobs"].claim(job)
    # When the reconciler finds it waiting
    assert world["reconciler"].run(now=now) == {"resubmission re-queued": 1}
    # Then it is queued again, not ended for its upload's age; a day after the retry it ends NOT_SUBMITTED
    assert world["jobs"].get(job.job_id).status is JobStatus.RECEIVED
    assert world["reconciler"].run(now=retried + timedelta(days=1, minutes=1)) == {"failed": 1}
    assert world["jobs"].get(job.job_id).error_code == "NOT_SUBMITTED"
