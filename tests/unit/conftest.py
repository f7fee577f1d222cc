"""The unit tests' world: the AWS the use cases call, on moto in process, the one fake WaveSpeed (and its CDN),
the test's clock, and the use cases built from them as each function builds them, with settings a test file
changes by overriding the `environment` fixture (or configures further by overriding `world`)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import boto3
import httpx
import pytest
from aws_lambda_powertools import Metrics
from moto import mock_aws

from loradrop.jobs import JobStore
from loradrop.ports import WaveSpeed
from loradrop.reconciling import Reconciler
from loradrop.sample_worker import SampleWorker
from loradrop.settings import CommonSettings, ReconcileSettings, StoreSettings, SubmitSettings
from loradrop.storing import Storer
from loradrop.submission import Submitter
from loradrop.tracking import Tracker
from tests.unit.fakes import Clock, FakeCDN, FakeWaveSpeed
from tests.unit.tables import create_jobs_table

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

REGION = "us-east-1"
UPLOADS = "uploads"
WEIGHTS = "weights"


@dataclass(frozen=True)
class Queues:
    intake: str
    store: str


@dataclass
class World:
    """Everything a use case meets, and the use cases: `submitter`, `tracker`, `reconciler` and `storer` are
    built once the world is, from `environment` (a test that needs one built otherwise builds its own)."""

    db: DynamoDBClient
    s3: S3Client
    sqs: SQSClient
    events: EventBridgeClient
    queues: Queues
    clock: Clock
    jobs: JobStore  # the jobs table, its writes stamped by `clock`
    wavespeed: FakeWaveSpeed
    cdn: FakeCDN
    http: httpx.Client  # to the CDN
    environment: dict[str, str]  # what each function's settings are read from
    submitter: Submitter = field(init=False)
    tracker: Tracker = field(init=False)
    reconciler: Reconciler = field(init=False)
    storer: Storer = field(init=False)
    samples: SampleWorker = field(init=False)

    def __post_init__(self) -> None:
        self.submitter = Submitter(
            jobs=self.jobs, s3=self.s3, wavespeed=self.connect, settings=self.settings(SubmitSettings)
        )
        reconcile = self.settings(ReconcileSettings)
        self.tracker = Tracker(jobs=self.jobs, sqs=self.sqs, wavespeed=self.connect, settings=reconcile)
        self.reconciler = Reconciler(self.tracker, self.jobs, self.connect, reconcile, clock=self.clock.monotonic)
        store = self.settings(StoreSettings)
        self.samples = SampleWorker(
            jobs=self.jobs, s3=self.s3, http=self.http, sqs=self.sqs, wavespeed=self.connect, settings=store
        )
        self.storer = Storer(
            jobs=self.jobs, s3=self.s3, http=self.http, wavespeed=self.connect, settings=store, samples=self.samples
        )

    def connect(self) -> WaveSpeed:
        """WaveSpeed as the use cases get it (a client per call): the fake, held by mypy to the port. It is read
        at each call, so a test may swap `wavespeed` for another fake."""
        return self.wavespeed

    def settings[S: CommonSettings](self, kind: type[S]) -> S:
        return kind.model_validate(self.environment)


def world_environment(queues: Queues) -> dict[str, str]:
    """The functions' environment in the world (each function reads the part it needs)."""
    return {
        "JOBS_TABLE": "jobs",
        "WAVESPEED_SECRET_ID": "unused",
        "WEBHOOK_URL": "https://hooks.test/webhooks/wavespeed",
        "INTAKE_QUEUE_URL": queues.intake,
        "STORE_QUEUE_URL": queues.store,
        "WEIGHTS_BUCKET": WEIGHTS,
    }


@pytest.fixture
def environment() -> dict[str, str]:
    """What a test file changes in the functions' environment (override this fixture in the file)."""
    return {}


@pytest.fixture
def world(environment: dict[str, str]) -> Iterator[World]:
    with mock_aws():
        db = boto3.client("dynamodb", region_name=REGION)
        create_jobs_table(db, stream=True)  # as template.yaml declares it: with the stream job events come from
        s3 = boto3.client("s3", region_name=REGION)
        for bucket in (UPLOADS, WEIGHTS):
            s3.create_bucket(Bucket=bucket)
        sqs = boto3.client("sqs", region_name=REGION)
        queues = Queues(
            intake=sqs.create_queue(QueueName="intake")["QueueUrl"],
            store=sqs.create_queue(QueueName="store")["QueueUrl"],
        )
        clock = Clock()
        cdn = FakeCDN()
        Metrics().clear_metrics()
        with httpx.Client(transport=httpx.MockTransport(cdn)) as http:
            yield World(
                db=db,
                s3=s3,
                sqs=sqs,
                events=boto3.client("events", region_name=REGION),
                queues=queues,
                clock=clock,
                jobs=JobStore(db, "jobs", clock=clock),
                wavespeed=FakeWaveSpeed(clock=clock),
                cdn=cdn,
                http=http,
                environment=world_environment(queues) | environment,
            )
