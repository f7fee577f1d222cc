"""Each handler, imported in process and given the real event from events/: its services are built as in Lambda
(settings from the environment, boto3 on moto in process), with only WaveSpeed faked behind its port."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

from loradrop import services, settings
from loradrop.job import Job, utc_now
from loradrop.jobs import JobStore
from loradrop.models import JobStatus, Task
from loradrop.signing import signature
from loradrop.wavespeed import RateLimited
from loradrop_local.dataset import training_zip
from tests.conftest import load_event
from tests.unit.fakes import FakeWaveSpeed
from tests.unit.tables import create_jobs_table

UPLOADS = "loradrop-dev-uploads-0123456789ab"  # the samples' names
INTAKE = "loradrop-IntakeQueue-Ab12Cd34"
STORE = "loradrop-StoreQueue-Ef56Gh78"
TASK = "3b2f6f1d0c7a4e5f9a8b7c6d5e4f3a2b"  # the webhook sample's task
WEBHOOK_SECRET = "whsec_handlers"


@dataclass
class LambdaContext:
    """What Powertools and the handlers read of Lambda's context."""

    function_name: str = "handler-under-test"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:handler-under-test"
    aws_request_id: str = "request-1"
    ends_at: float = 0.0

    def get_remaining_time_in_millis(self) -> int:
        return int((self.ends_at - time.monotonic()) * 1000)


def context(seconds: float = 300) -> LambdaContext:
    return LambdaContext(ends_at=time.monotonic() + seconds)


@dataclass
class World:
    jobs: JobStore
    s3: Any
    sqs: Any
    queues: dict[str, str]
    wavespeed: FakeWaveSpeed


def _forget_built_services() -> None:
    """Settings and services are built once per container: each test is a fresh container."""
    for name in ("submit", "webhook", "store", "reconcile", "events"):
        getattr(settings, f"{name}_settings").cache_clear()
    for built in (services.aws, services.submitter, services.tracker, services.webhook_secrets, services.reconciler):
        built.cache_clear()
    services.storer.cache_clear()
    services.event_publisher.cache_clear()


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        queues = {name: sqs.create_queue(QueueName=name)["QueueUrl"] for name in (INTAKE, STORE)}
        environment = {
            "JOBS_TABLE": "jobs",
            "WAVESPEED_SECRET_ID": "wavespeed",
            "WEBHOOK_URL": "https://hooks.test/webhooks/wavespeed",
            "INTAKE_QUEUE_URL": queues[INTAKE],
            "STORE_QUEUE_URL": queues[STORE],
            "WEIGHTS_BUCKET": "weights",
            "EVENT_BUS_NAME": "loradrop",
            "RECONCILE_AFTER_SECONDS": "0",
        }
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        _forget_built_services()
        wavespeed = FakeWaveSpeed()
        monkeypatch.setattr(services, "WaveSpeedFactory", lambda _settings: lambda: wavespeed)
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        create_jobs_table(dynamodb)
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=UPLOADS)
        s3.put_bucket_versioning(Bucket=UPLOADS, VersioningConfiguration={"Status": "Enabled"})
        secret = {"api_key": "key", "webhook_secret": WEBHOOK_SECRET}
        boto3.client("secretsmanager", region_name="us-east-1").create_secret(
            Name="wavespeed", SecretString=json.dumps(secret)
        )
        yield World(JobStore(dynamodb, "jobs"), s3, sqs, queues, wavespeed)
    _forget_built_services()


def _upload_notification(world: World, notification: dict[str, Any]) -> dict[str, Any]:
    """The sample's notification, naming the ZIP this test put where it says (the version S3 gave it)."""
    obj = notification["Records"][0]["s3"]["object"]
    put = world.s3.put_object(Bucket=UPLOADS, Key=obj["key"].replace("+", " "), Body=training_zip())
    obj.update({"versionId": put["VersionId"], "eTag": put["ETag"].strip('"')})
    return notification


def _queued(world: World, queue: str, sample: dict[str, Any]) -> dict[str, Any]:
    """The sample's SQS record, as really received from the queue (a receipt handle SQS knows)."""
    record = sample["Records"][0]
    world.sqs.send_message(QueueUrl=world.queues[queue], MessageBody=record["body"])
    (message,) = world.sqs.receive_message(QueueUrl=world.queues[queue], VisibilityTimeout=0)["Messages"]
    record.update({"receiptHandle": message["ReceiptHandle"], "messageId": message["MessageId"]})
    return sample


def _visible(world: World, queue: str) -> int:
    return len(world.sqs.receive_message(QueueUrl=world.queues[queue], MaxNumberOfMessages=10).get("Messages", []))


def test_submit_training_takes_the_queued_upload_and_pays_for_one_task(world: World) -> None:
    from submit_training.app import handler

    event = load_event("sqs_upload.json")
    record = event["Records"][0]
    record["body"] = json.dumps(_upload_notification(world, json.loads(record["body"])))
    answer = handler(_queued(world, INTAKE, event), context())
    assert answer == {"batchItemFailures": []}
    (post,) = world.wavespeed.posts
    assert post.model == "wavespeed-ai/flux-dev-lora-trainer"
    (job,) = world.jobs.list()
    assert (job.status, job.prediction_id, job.attempts) == (JobStatus.SUBMITTED, "task-1", 1)


def test_submit_training_defers_a_rate_limited_upload_past_the_next_minute(world: World) -> None:
    from submit_training.app import handler

    world.wavespeed.answer = RateLimited("429 too many requests", status=429)
    event = load_event("sqs_upload.json")
    record = event["Records"][0]
    record["body"] = json.dumps(_upload_notification(world, json.loads(record["body"])))
    answer = handler(_queued(world, INTAKE, event), context())
    assert answer == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}
    assert _visible(world, INTAKE) == 0  # kept invisible: WaveSpeed's start limit resets every minute
    (job,) = world.jobs.list()
    assert (job.status, job.attempts) == (JobStatus.RECEIVED, 0)


def test_submit_training_takes_a_bare_s3_event_as_sam_local_invoke_sends_it(world: World) -> None:
    from submit_training.app import handler

    answer = handler(_upload_notification(world, load_event("s3_put.json")), context())
    (job,) = answer["jobs"]
    assert job["status"] == "SUBMITTED"
    assert len(world.wavespeed.posts) == 1


def test_a_malformed_intake_message_goes_back_at_once_for_the_dead_letter_queue(world: World) -> None:
    from submit_training.app import handler

    event = load_event("sqs_resubmit.json")
    event["Records"][0]["body"] = '{"job_id": 42}'
    answer = handler(_queued(world, INTAKE, event), context())
    assert answer == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}
    assert world.wavespeed.posts == []
    time.sleep(1.1)  # visible again after 1 s: its next receive sends it to the DLQ
    assert _visible(world, INTAKE) == 1


def _job(status: JobStatus, **fields: Any) -> Job:
    now = utc_now()
    return Job(
        job_id="portraits-of-ana-5d3f0c1b2a49",
        status=status,
        source_bucket=UPLOADS,
        source_key="uploads/portraits of ana.zip",
        created_at=now,
        updated_at=now,
        history=[{"status": status.value, "at": now}],
        **fields,
    )


def _signed(event: dict[str, Any], secret: str) -> dict[str, Any]:
    timestamp = str(int(time.time()))
    headers = event["headers"]
    headers["webhook-timestamp"] = timestamp
    headers["webhook-signature"] = "v3," + signature(secret, headers["webhook-id"], timestamp, event["body"].encode())
    return event


def test_receive_webhook_moves_a_signed_completion_to_storing_and_queues_the_copy(world: World) -> None:
    from receive_webhook.app import handler

    world.jobs.claim(_job(JobStatus.TRAINING, prediction_id=TASK, attempts=1))
    event = load_event("webhook_completed.json")
    world.wavespeed.tasks[TASK] = Task.model_validate_json(event["body"])
    answer = handler(_signed(event, WEBHOOK_SECRET), context(10))
    assert (answer["statusCode"], json.loads(answer["body"])["outcome"]) == (200, "storing")
    assert world.wavespeed.gets == [TASK]  # the body only names the task: WaveSpeed's GET is the truth
    (message,) = world.sqs.receive_message(QueueUrl=world.queues[STORE])["Messages"]
    assert json.loads(message["Body"]) == {"job_id": "portraits-of-ana-5d3f0c1b2a49", "prediction_id": TASK}


def test_receive_webhook_answers_a_forged_signature_401_and_asks_nobody(world: World) -> None:
    from receive_webhook.app import handler

    world.jobs.claim(_job(JobStatus.TRAINING, prediction_id=TASK, attempts=1))
    answer = handler(_signed(load_event("webhook_completed.json"), "not-the-secret"), context(10))
    assert (answer["statusCode"], json.loads(answer["body"])["message"]) == (401, "invalid webhook signature")
    assert world.wavespeed.gets == []
    job = world.jobs.get("portraits-of-ana-5d3f0c1b2a49")
    assert job is not None
    assert job.status is JobStatus.TRAINING


def test_store_weights_leaves_a_running_copy_alone_and_comes_back_when_its_lease_ends(world: World) -> None:
    from store_weights.app import handler

    world.jobs.claim(
        _job(JobStatus.STORING, prediction_id=TASK, attempts=1, store_lease_owner="other", store_lease_until="2999")
    )
    event = _queued(world, STORE, load_event("sqs_store.json"))
    answer = handler(event, context())
    assert answer == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}
    assert world.wavespeed.gets == []  # nothing was copied twice
    assert _visible(world, STORE) == 0


def test_reconcile_jobs_asks_wavespeed_about_a_job_whose_webhook_was_lost(world: World) -> None:
    from reconcile_jobs.app import handler

    world.jobs.claim(_job(JobStatus.TRAINING, prediction_id=TASK, attempts=1))
    world.wavespeed.tasks[TASK] = Task.model_validate_json(load_event("webhook_completed.json")["body"])
    answer = handler(load_event("schedule.json"), context(60))
    assert answer == {"summary": {"storing": 1}}
    job = world.jobs.get("portraits-of-ana-5d3f0c1b2a49")
    assert job is not None
    assert job.status is JobStatus.STORING


def test_publish_events_sends_the_sample_end_to_the_bus(world: World) -> None:
    from publish_events.app import handler

    events = boto3.client("events", region_name="us-east-1")
    events.create_event_bus(Name="loradrop")
    inbox = world.sqs.create_queue(QueueName="inbox")["QueueUrl"]
    inbox_arn = world.sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="ends", EventBusName="loradrop", EventPattern=json.dumps({"source": ["loradrop"]}))
    events.put_targets(Rule="ends", EventBusName="loradrop", Targets=[{"Id": "inbox", "Arn": inbox_arn}])
    sample = load_event("stream_job_ended.json")
    answer = handler(sample, context(60))
    assert answer == {"batchItemFailures": []}
    (message,) = world.sqs.receive_message(QueueUrl=inbox)["Messages"]
    event = json.loads(message["Body"])
    assert (event["detail-type"], event["detail"]["status"]) == ("Job Completed", "COMPLETED")
    stored = sample["Records"][0]["dynamodb"]["NewImage"]
    assert event["detail"]["weights_sha256"] == stored["weights_sha256"]["S"]
