"""STORING → COMPLETED: copy the task's weights into S3, checksummed, exactly once per job."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import BotoCoreError, ClientError

from loradrop.egress import DisallowedOutput, OutputPolicy
from loradrop.events import EventPublisher, end_job
from loradrop.jobs import Job, JobStore
from loradrop.models import JobStatus
from loradrop.settings import StoreSettings
from loradrop.wavespeed import WaveSpeedClient, WaveSpeedError
from loradrop.weights import DownloadFailed, transfer_config, transfer_weights, weights_filename

logger = Logger(child=True)
metrics = Metrics()


def _ascii(value: object) -> str:
    """S3 metadata travels in HTTP headers: keep it ASCII."""
    return str(value).encode("ascii", "backslashreplace").decode("ascii")


class Storer:
    def __init__(
        self,
        *,
        jobs: JobStore,
        s3: Any,
        http: httpx.Client,
        events: EventPublisher,
        wavespeed: Callable[[], WaveSpeedClient],
        settings: StoreSettings,
    ) -> None:
        self._jobs = jobs
        self._s3 = s3
        self._http = http
        self._events = events
        self._wavespeed = wavespeed
        self._settings = settings
        self._policy = OutputPolicy(settings.output_hosts)
        self._transfer = transfer_config(settings.part_size_mib, settings.part_concurrency)

    def store(self, job_id: str, prediction_id: str, receive_count: int) -> tuple[Job | None, str]:
        """Copy the weights of a STORING job. Raises to have SQS retry; ends the job on the last try."""
        logger.thread_safe_append_keys(job_id=job_id)
        job = self._jobs.get(job_id)
        if job is None:
            logger.warning("store request for an unknown job ignored")
            return None, "unknown job"
        if job.status is not JobStatus.STORING or job.prediction_id != prediction_id:
            return job, "unchanged"
        try:
            prediction = self._wavespeed().get_result(prediction_id)
            url = prediction.weights_url
            if prediction.status != "completed" or url is None:
                return self._end(
                    job,
                    "NO_OUTPUT",
                    f"WaveSpeed task {prediction_id} has no output to store (status {prediction.status[:40]})",
                ), "failed"
            self._policy.check(url)
            stored = transfer_weights(
                url=url,
                http=self._http,
                policy=self._policy,
                s3=self._s3,
                bucket=self._settings.weights_bucket,
                key=f"{self._settings.weights_prefix}{job_id}/{weights_filename(url)}",
                metadata=self._metadata(job),
                config=self._transfer,
            )
        except DisallowedOutput as err:
            host = urlsplit(url or "").hostname if url else "?"
            return self._end(job, "OUTPUT_REFUSED", f"refused to download the weights from {host}: {err}"), "failed"
        except (DownloadFailed, WaveSpeedError, ClientError, BotoCoreError) as err:
            metrics.add_metric(name="StoreAttemptsFailed", unit=MetricUnit.Count, value=1)
            if receive_count >= self._settings.store_max_receives:
                self._end(job, "STORE_FAILED", f"could not copy the weights after {receive_count} tries: {err}")
            raise
        completed = self._jobs.transition(
            job_id,
            {JobStatus.STORING},
            JobStatus.COMPLETED,
            fields={"weights_uri": stored.uri, "weights_size": stored.size, "weights_sha256": stored.sha256},
            remove=("error", "error_code"),
        )
        if completed is None:
            return self._jobs.get(job_id), "unchanged"
        metrics.add_metric(name="WeightsStoredBytes", unit=MetricUnit.Bytes, value=stored.size)
        logger.info("weights stored", extra={"uri": stored.uri, "size": stored.size, "sha256": stored.sha256})
        self._events.publish(completed)
        return completed, "completed"

    def _metadata(self, job: Job) -> dict[str, str]:
        params = {k.replace("_", "-"): _ascii(v) for k, v in (job.params or {}).items()}
        return params | {"job-id": job.job_id, "prediction-id": _ascii(job.prediction_id)}

    def _end(self, job: Job, code: str, reason: str) -> Job:
        ended = end_job(self._jobs, self._events, job.job_id, {JobStatus.STORING}, JobStatus.FAILED, code, reason)
        return ended or job
