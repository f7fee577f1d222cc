"""Builds each function's collaborators once per container, on first use (not at import)."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

import boto3
import httpx
from botocore.config import Config

from loradrop.credentials import WebhookSecretSource, load_credentials
from loradrop.events import EventPublisher
from loradrop.jobs import JobStore
from loradrop.settings import (
    CommonSettings,
    events_settings,
    reconcile_settings,
    store_settings,
    submit_settings,
    webhook_settings,
)
from loradrop.tls import tls_context
from loradrop.wavespeed import WaveSpeedClient

AWS_CONNECT_SECONDS = 3
AWS_READ_SECONDS = 10

# Each factory imports only its own part of the domain: a handler's cold start pays for what it uses
# (the webhook function never loads the S3 transfer manager, for instance).
if TYPE_CHECKING:
    from loradrop.reconciling import Reconciler
    from loradrop.storing import Storer
    from loradrop.submission import Submitter
    from loradrop.tracking import Tracker


@cache
def aws(service: str) -> Any:
    """One client per service. S3 presigns with SigV4 (boto3 falls back to SigV2 on custom endpoints). A
    stuck call fails in seconds (botocore waits 60 s to connect and 60 s to read by default), so every step
    fits the time its function keeps for it: a range read the dataset survey's, a write the webhook's."""
    config = Config(
        retries={"mode": "standard"},
        connect_timeout=AWS_CONNECT_SECONDS,
        read_timeout=AWS_READ_SECONDS,
        signature_version="s3v4" if service == "s3" else None,
    )
    return boto3.client(service, config=config)


class OnFirstUse:
    """A client made when it is first called: EventBridge only when a job ends, SQS only when a job is
    handed on, so an invocation that does neither does not pay to build them (~10 ms each)."""

    def __init__(self, service: str) -> None:
        self._service = service

    def __getattr__(self, name: str) -> Any:
        return getattr(aws(self._service), name)


class WaveSpeedFactory:
    """A WaveSpeed client for the current API key; a rotated key (after the cache) gets a new client."""

    def __init__(self, settings: CommonSettings) -> None:
        self._settings = settings
        self._client: WaveSpeedClient | None = None
        self._key: str | None = None

    def __call__(self) -> WaveSpeedClient:
        credentials = load_credentials(self._settings.wavespeed_secret_id, self._settings.secret_max_age_seconds)
        if self._client is None or credentials.api_key != self._key:
            self._client = WaveSpeedClient(
                self._settings.wavespeed_api_base,
                credentials.api_key,
                submit_timeout=self._settings.submit_timeout_seconds,
                result_tries=self._settings.wavespeed_result_tries,
                result_timeout=self._settings.wavespeed_result_timeout,
            )
            self._key = credentials.api_key
        return self._client


def _common(settings: CommonSettings) -> tuple[JobStore, WaveSpeedFactory]:
    return JobStore(aws("dynamodb"), settings.jobs_table), WaveSpeedFactory(settings)


@cache
def submitter() -> Submitter:
    from loradrop.submission import Submitter

    settings = submit_settings()
    jobs, wavespeed = _common(settings)
    return Submitter(jobs=jobs, s3=aws("s3"), wavespeed=wavespeed, settings=settings)


@cache
def tracker() -> Tracker:
    from loradrop.tracking import Tracker

    settings = webhook_settings()
    jobs, wavespeed = _common(settings)
    return Tracker(jobs=jobs, sqs=OnFirstUse("sqs"), wavespeed=wavespeed, settings=settings)


@cache
def webhook_secrets() -> WebhookSecretSource:
    settings = webhook_settings()
    wavespeed = WaveSpeedFactory(settings)
    return WebhookSecretSource(
        lambda force: load_credentials(settings.wavespeed_secret_id, settings.secret_max_age_seconds, force),
        lambda deadline: wavespeed().get_webhook_secret(deadline),
    )


@cache
def reconciler() -> Reconciler:
    from loradrop.reconciling import Reconciler
    from loradrop.tracking import Tracker

    settings = reconcile_settings()
    jobs, wavespeed = _common(settings)
    tracking = Tracker(jobs=jobs, sqs=OnFirstUse("sqs"), wavespeed=wavespeed, settings=settings)
    return Reconciler(tracking, jobs, wavespeed, settings)


@cache
def storer() -> Storer:
    from loradrop.sample_worker import SampleWorker
    from loradrop.storing import Storer

    settings = store_settings()
    jobs, wavespeed = _common(settings)
    # A read may stall 20 s at most: the copy's give-up margin (30 s) must cover one.
    http = httpx.Client(timeout=httpx.Timeout(connect=10.0, read=20.0, write=20.0, pool=10.0), verify=tls_context())
    s3, sqs = aws("s3"), OnFirstUse("sqs")
    samples = SampleWorker(jobs=jobs, s3=s3, http=http, sqs=sqs, wavespeed=wavespeed, settings=settings)
    return Storer(jobs=jobs, s3=s3, http=http, wavespeed=wavespeed, settings=settings, samples=samples)


@cache
def event_publisher() -> EventPublisher:
    return EventPublisher(aws("events"), events_settings().event_bus_name)
