"""Every sample in events/ loads and runs against its handler on the local stack."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from loradrop_local.aws.stack import LocalStack
from loradrop_local.dataset import training_zip
from tests.conftest import load_event
from tests.integration.helpers import TERMINAL, log_lines, posts_for
from tests.samples import sample

pytestmark = pytest.mark.integration


def test_bare_s3_event(stack: LocalStack, key: str) -> None:
    # An upload under uploads/ (the only prefix SubmitTraining may read) also notifies the intake queue:
    # the bare event and the notification name the same upload, so they make one job and one task.
    stack.client("s3").put_object(Bucket=stack.uploads_bucket, Key=key, Body=training_zip())
    result = stack.invoke("SubmitTrainingFunction", sample(stack, "s3_put.json", key=key))
    (job,) = result["jobs"]
    assert job["status"] in ("RECEIVED", "SUBMITTING", "SUBMITTED", "STORING", "COMPLETED")
    assert stack.wait_for(job["job_id"], TERMINAL)["status"] == "COMPLETED"
    assert len(posts_for(stack, key)) == 1


def test_a_bare_s3_event_outside_uploads_is_refused_with_what_to_do(stack: LocalStack, key: str) -> None:
    # Outside uploads/ the role may not read (IAM enforced locally, as on AWS): REJECTED, nothing sent
    key = key.replace("uploads/", "manual/")
    stack.client("s3").put_object(Bucket=stack.uploads_bucket, Key=key, Body=training_zip())
    result = stack.invoke("SubmitTrainingFunction", sample(stack, "s3_put.json", key=key))
    (job,) = result["jobs"]
    assert job["status"] == "REJECTED"
    assert "under uploads/" in stack.job(job["job_id"])["error"]  # type: ignore[index]
    assert posts_for(stack, key) == []


def test_sqs_upload_and_resubmit_events(stack: LocalStack, key: str) -> None:
    job_id = stack.upload(key, training_zip())
    stack.wait_for(job_id, TERMINAL)
    assert stack.invoke("SubmitTrainingFunction", sample(stack, "sqs_upload.json", key=key)) == {
        "batchItemFailures": []
    }
    for name in ("sqs_resubmit.json", "sqs_retry.json"):
        event = sample(stack, name, job_id=job_id)
        assert stack.invoke("SubmitTrainingFunction", event) == {"batchItemFailures": []}
    # A COMPLETED job is neither resubmitted nor retried: still one POST
    assert stack.job(job_id)["status"] == "COMPLETED"  # type: ignore[index]
    assert len(posts_for(stack, key)) == 1


def test_webhook_event_signed_and_unsigned(stack: LocalStack) -> None:
    assert stack.simulator is not None
    event = load_event("webhook_completed.json")
    answer = stack.invoke("ReceiveWebhookFunction", event)
    assert answer["statusCode"] == 401  # the sample's placeholder signature
    answer = stack.invoke("ReceiveWebhookFunction", sample(stack, "webhook_completed.json"))
    assert answer["statusCode"] == 404  # genuine, but for a task no job of ours has
    assert json.loads(answer["body"])["message"] == "no job has this task id (yet)"


@pytest.mark.parametrize("name", ["sqs_store.json", "sqs_sample.json"])
def test_store_and_sample_events_for_an_unknown_job_are_acknowledged(stack: LocalStack, name: str) -> None:
    assert stack.invoke("StoreWeightsFunction", sample(stack, name)) == {"batchItemFailures": []}


def test_schedule_event(stack: LocalStack) -> None:
    result = stack.invoke("ReconcileJobsFunction", load_event("schedule.json"))
    assert isinstance(result["summary"], dict)


def test_a_malformed_store_message_is_dead_lettered_in_seconds_with_a_log_line(stack: LocalStack) -> None:
    # Given a store message that names no task (no retry can fix it)
    marker = f"malformed-{time.time_ns()}"
    sqs = stack.client("sqs")
    sqs.send_message(QueueUrl=stack.queue_urls["StoreQueue"], MessageBody=json.dumps({"job_id": marker}))
    # Then it reaches the store DLQ within seconds (not after 5 visibility timeouts), and the log says why
    deadline = time.monotonic() + 30
    dead: list[dict[str, Any]] = []
    while not dead and time.monotonic() < deadline:
        dead = [body for body in stack.drain_queue("StoreDeadLetterQueue") if body.get("job_id") == marker]
        time.sleep(0.2)
    assert dead == [{"job_id": marker}]
    assert "malformed store message: it goes to the dead-letter queue" in log_lines(stack)
    assert "prediction_id: Field required" in log_lines(stack)


def published_by(stack: LocalStack, name: str) -> list[dict[str, Any]]:
    """The events the sample stream record `name` has PublishEvents put on the bus (its job is the samples' own)."""
    assert stack.invoke("PublishEventsFunction", load_event(name)) == {"batchItemFailures": []}
    deadline = time.monotonic() + 10
    published: list[dict[str, Any]] = []
    while not published and time.monotonic() < deadline:
        published = [e for e in stack.drain_events() if e["detail"]["job_id"] == "portraits-of-ana-5d3f0c1b2a49"]
        time.sleep(0.1)
    return published


def test_stream_event_publishes_the_jobs_end(stack: LocalStack) -> None:
    # The sample's record of a job moving STORING → COMPLETED, as the jobs table's change stream sends it
    (completed,) = published_by(stack, "stream_job_ended.json")
    assert completed["detail-type"] == "Job Completed"
    assert completed["detail"]["event_id"] == "portraits-of-ana-5d3f0c1b2a49/COMPLETED/2026-11-25T09:23:00.412Z"
    assert completed["detail"]["weights_sha256"].startswith("a3f1c0de")
    assert completed["time"] == "2026-11-25T09:23:00Z"  # when the job ended, not when it was published


def test_stream_event_publishes_a_completed_jobs_samples(stack: LocalStack) -> None:
    # The record of a completed job whose two samples ended (one stored, one failed)
    (ready,) = published_by(stack, "stream_samples_ready.json")
    assert ready["detail-type"] == "Samples Ready"
    assert ready["detail"]["event_id"] == "portraits-of-ana-5d3f0c1b2a49/SAMPLES/2026-11-25T09:24:10.118Z"
    assert [s["state"] for s in ready["detail"]["samples"]] == ["done", "failed"]
    assert "Samples: 1 of 2 rendered: s3://" in ready["detail"]["summary"]
    assert ready["time"] == "2026-11-25T09:24:10Z"
