"""STORING → COMPLETED: copy the task's weights into S3, checksummed, exactly once per job.

One copy runs at a time: a copy takes a lease on the job until its invocation ends, so a duplicate
message, or the reconciler, leaves a running copy alone. A copy gives up before its invocation's
timeout and records why. A job whose copy FAILED is copied again when its store message comes
back (a DLQ redrive, or `loradrop retry`) while WaveSpeed still holds the output.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import BotoCoreError, ClientError

from loradrop.codes import ErrorCode, Outcome
from loradrop.egress import DisallowedOutput, OutputPolicy
from loradrop.job import COPY_FAILED_NOTE, Job, iso, parse_iso, utc_now
from loradrop.jobs import JobStore
from loradrop.log_context import about_job
from loradrop.messages import SampleRequest, read_store
from loradrop.model_card import CARD_NAME, README_NAME, build_card, card_files, card_warnings
from loradrop.models import STORE_RETRYABLE, JobStatus, Task
from loradrop.ports import WaveSpeed
from loradrop.queues import Deferred, QueueRecord, backoff_seconds
from loradrop.sample_worker import SampleWorker
from loradrop.settings import StoreSettings
from loradrop.wavespeed import WaveSpeedError
from loradrop.weights import (
    CopyTimedOut,
    DownloadFailed,
    OutputTooLarge,
    PartPlan,
    StoredWeights,
    transfer_weights,
    weights_filename,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

logger = Logger(child=True)
metrics = Metrics()

# Time kept back from the invocation for the last chunk read (the download's read timeout is 20 s),
# aborting the upload and recording the outcome.
GIVE_UP_MARGIN_SECONDS = 30.0


class CopyInProgress(Exception):
    """Another invocation holds the job's copy lease until `seconds_left` from now: ask again then
    (by then that copy has finished, or died and its lease is over)."""

    def __init__(self, seconds_left: float) -> None:
        super().__init__(f"another copy holds the lease for {seconds_left:.0f} s more")
        self.seconds_left = seconds_left


def _ascii(value: object) -> str:
    """S3 metadata travels in HTTP headers: keep it ASCII."""
    return str(value).encode("ascii", "backslashreplace").decode("ascii")


class Storer:
    def __init__(  # noqa: PLR0913 - its collaborators, injected
        self,
        *,
        jobs: JobStore,
        s3: S3Client,
        http: httpx.Client,
        wavespeed: Callable[[], WaveSpeed],
        settings: StoreSettings,
        samples: SampleWorker,
    ) -> None:
        self._samples = samples
        self._jobs = jobs
        self._s3 = s3
        self._http = http
        self._wavespeed = wavespeed
        self._settings = settings
        self._policy = OutputPolicy(settings.output_hosts)
        self._plan = PartPlan.mib(settings.part_size_mib, settings.part_concurrency)

    def store_message(self, record: QueueRecord, *, remaining_ms: Callable[[], int], owner: str) -> None:
        """A store-queue message; raises Deferred (with its delay) when it is to come back: after the running
        copy's lease (real time), or after a back-off when this copy failed (it logged why)."""
        request = read_store(record.body)
        if isinstance(request, SampleRequest):
            self._samples.handle(request, record.receive_count, remaining_ms() / 1000)
            return
        try:
            self.store(
                request.job_id,
                request.prediction_id,
                record.receive_count,
                remaining_seconds=remaining_ms() / 1000,
                owner=owner,
            )
        except CopyInProgress as busy:  # not a failure of this message
            raise Deferred(busy.seconds_left + 1, reason=str(busy)) from busy
        except Exception as err:
            delay = backoff_seconds(record.receive_count, base=20)
            raise Deferred(delay, scale=self._settings.retry_delay_scale, reason=str(err)) from err

    def store(
        self, job_id: str, prediction_id: str, receive_count: int, *, remaining_seconds: float, owner: str
    ) -> tuple[Job | None, Outcome]:
        """Copy the weights of a STORING job. Raises to have SQS retry; ends the job on the last try.

        `remaining_seconds` is the invocation's time left; `owner` names the invocation (its lease)."""
        about_job(job_id, prediction_id)
        job = self._jobs.get(job_id)
        if job is None:
            logger.warning("store request for an unknown job ignored")
            return None, Outcome.UNKNOWN_JOB
        if job.prediction_id != prediction_id:
            return job, Outcome.UNCHANGED
        if job.status is JobStatus.FAILED and job.error_code in STORE_RETRYABLE:
            job = self._reopen(job)
        if job.status is not JobStatus.STORING:
            return job, Outcome.UNCHANGED
        margin = min(GIVE_UP_MARGIN_SECONDS, remaining_seconds / 3)
        deadline = time.monotonic() + remaining_seconds - margin
        until = iso(datetime.now(UTC) + timedelta(seconds=remaining_seconds))
        leased = self._jobs.take_lease(job_id, owner, until)
        current = leased.job
        if not leased.done or current is None:
            if current is not None and current.status is JobStatus.STORING and current.store_lease_until:
                logger.info("another copy is running; leaving it alone", extra={"until": current.store_lease_until})
                left = (parse_iso(current.store_lease_until) - datetime.now(UTC)).total_seconds()
                raise CopyInProgress(max(0.0, left))
            return current, Outcome.UNCHANGED
        try:
            return self._copy(current, prediction_id, receive_count, deadline)
        except Exception as err:
            # Whatever broke, the next delivery may copy at once; the job's history keeps why this try failed.
            logger.warning("copy attempt failed", extra={"reason": str(err)})
            self._release(current, note=f"{COPY_FAILED_NOTE}: {err}")
            raise

    def _reopen(self, job: Job) -> Job:
        """FAILED → STORING for a store failure worth another try (a person asked for it)."""
        reopened = self._jobs.reopen(job, JobStatus.STORING, f"copy retried after [{job.error_code}]")
        return reopened.job or job

    def _copy(self, job: Job, prediction_id: str, receive_count: int, deadline: float) -> tuple[Job | None, Outcome]:
        job_id = job.job_id
        url: str | None = None
        try:
            task = self._wavespeed().get_result(prediction_id)
            url = task.weights_url
            if task.status != "completed" or url is None:
                return self._end(
                    job,
                    ErrorCode.NO_OUTPUT,
                    f"WaveSpeed task {prediction_id} has no output to store (status {task.status[:40]})",
                ), Outcome.FAILED
            stored = self._transfer(job, url, deadline)
            card_uri, problems = self._write_card(job, task, stored)
        except DisallowedOutput as err:
            host = urlsplit(url or "").hostname if url else "?"
            return self._end(
                job,
                ErrorCode.OUTPUT_REFUSED,
                f"refused to download the weights from {host}: {err}. If WaveSpeed serves its outputs from a new "
                f"host, add it to the stack's OutputHosts, then `loradrop retry {job_id}` while WaveSpeed keeps the "
                "output (about 7 days)",
            ), Outcome.FAILED
        except OutputTooLarge as err:
            return self._end(
                job,
                ErrorCode.OUTPUT_TOO_LARGE,
                f"refused to copy task {prediction_id}'s output: {err}. If it really is the LoRA, raise the stack's "
                f"MaxWeightsMiB, then `loradrop retry {job_id}`",
            ), Outcome.FAILED
        except CopyTimedOut as err:
            metrics.add_metric(name="StoreTimedOut", unit=MetricUnit.Count, value=1)
            return self._end(
                job,
                ErrorCode.STORE_TIMEOUT,
                f"the copy could not finish within StoreWeights' timeout ({err}): raise the function's memory "
                f"(network speed grows with it), then `loradrop retry {job_id}` while WaveSpeed keeps the output",
            ), Outcome.FAILED
        except (DownloadFailed, WaveSpeedError, ClientError, BotoCoreError) as err:
            metrics.add_metric(name="StoreAttemptsFailed", unit=MetricUnit.Count, value=1)
            if receive_count >= self._settings.store_max_receives:
                self._end(
                    job,
                    ErrorCode.STORE_FAILED,
                    f"could not copy the weights after {receive_count} tries: {err}; `loradrop retry {job_id}` "
                    "(or a redrive of the store DLQ) copies them again while WaveSpeed keeps the output",
                )
            raise
        return self._complete(job, stored, card_uri, problems)

    def _transfer(self, job: Job, url: str, deadline: float) -> StoredWeights:
        """The weights streamed from WaveSpeed's output into S3, checksummed, by the invocation's deadline."""
        self._policy.check(url)
        name = weights_filename(url)
        return transfer_weights(
            url=url,
            http=self._http,
            policy=self._policy,
            s3=self._s3,
            bucket=self._settings.weights_bucket,
            key=f"{self._prefix(job)}{'weights-' if name in (CARD_NAME, README_NAME) else ''}{name}",
            metadata=self._metadata(job),
            plan=self._plan,
            deadline=deadline,
            max_bytes=self._settings.max_weights_mib * 1024 * 1024,
        )

    def _complete(
        self, job: Job, stored: StoredWeights, card_uri: str, problems: list[str]
    ) -> tuple[Job | None, Outcome]:
        weights = {
            "weights_uri": stored.uri,
            "weights_size": stored.size,
            "weights_sha256": stored.sha256,
            "model_card_uri": card_uri,
        }
        samples = self._samples.plan(job)  # before the job completes: a crash between leaves them for the reconciler
        completed = self._jobs.complete(job, weights, job.warnings + problems if problems else None)
        if not completed.done:
            return completed.job, Outcome.UNCHANGED
        self._samples.start(samples)
        metrics.add_metric(name="WeightsStoredBytes", unit=MetricUnit.Bytes, value=stored.size)
        logger.info("weights stored", extra={"uri": stored.uri, "size": stored.size, "sha256": stored.sha256})
        return completed.job, Outcome.COMPLETED

    def _prefix(self, job: Job) -> str:
        return f"{self._settings.weights_prefix}{job.job_id}/"

    def _write_card(self, job: Job, task: Task, stored: StoredWeights) -> tuple[str, list[str]]:
        """model-card.json and README.md beside the weights; returns the card's URI and what it found wrong
        with the weights file (recorded as warnings)."""
        card = build_card(job, task, stored, utc_now())
        problems = card_warnings(card)
        card["warnings"] = card["warnings"] + problems
        bucket, prefix = self._settings.weights_bucket, self._prefix(job)
        for name, body, kind in card_files(card):
            self._s3.put_object(
                Bucket=bucket, Key=prefix + name, Body=body, ContentType=kind, Metadata={"job-id": job.job_id}
            )
        return f"s3://{bucket}/{prefix}{CARD_NAME}", problems

    def _release(self, job: Job, note: str | None = None) -> None:
        """Drop this copy's lease so the next delivery may start at once (best effort: it expires anyway;
        a job that ended meanwhile has no lease left to drop)."""
        try:
            self._jobs.release_lease(job, note)
        except (ClientError, BotoCoreError):
            logger.warning("could not release the copy lease; it expires by itself")

    def _metadata(self, job: Job) -> dict[str, str]:
        # (the sample prompts may run to 2,000 characters: S3's metadata holds 2 KB in all)
        stored = job.params.model_dump(exclude_none=True, exclude={"sample_prompts"}) if job.params else {}
        params = {k.replace("_", "-"): _ascii(v) for k, v in stored.items()}
        return params | {"job-id": job.job_id, "prediction-id": _ascii(job.prediction_id)}

    def _end(self, job: Job, code: ErrorCode, reason: str) -> Job:
        return self._jobs.end(job.job_id, {JobStatus.STORING}, JobStatus.FAILED, code, reason).job or job
