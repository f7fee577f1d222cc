"""WaveSpeed task state → job state. One code path for the webhook and the reconciler.

WaveSpeed's answer to GET /predictions/{id}/result is the truth; a webhook body only says which
task to ask about. Every move is a conditional write, so repeated or out-of-order deliveries
change nothing.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from loradrop.events import EventPublisher, end_job
from loradrop.jobs import Job, JobStore
from loradrop.models import TERMINAL_STATUSES, WAITING_ON_WAVESPEED, JobStatus, Prediction
from loradrop.settings import ReconcileSettings, WebhookSettings
from loradrop.wavespeed import RequestRejected, WaveSpeedClient, WaveSpeedError

logger = Logger(child=True)
metrics = Metrics()

ENDED_TASK_STATUSES = frozenset({"failed", "cancelled", "timeout", "deleted"})
_ACTIVE = {JobStatus.SUBMITTED, JobStatus.TRAINING}

# What a user should do about each documented failure code.
_HINTS = {
    1200: "an image was flagged by content moderation: remove it and upload again",
    1400: "a required parameter was missing: check the upload's metadata",
    1401: "a parameter was invalid: check the upload's metadata",
    1402: "WaveSpeed could not download the ZIP (the link may have expired): upload it again",
}


class JobNotFound(LookupError):
    """No job has this WaveSpeed task id (yet)."""


def is_retryable(prediction: Prediction) -> bool:
    code = prediction.code
    return prediction.status == "timeout" or (code is not None and (5000 <= code <= 5999 or code == 1402))


def describe_failure(prediction: Prediction) -> str:
    text = f"WaveSpeed task {prediction.id} {prediction.status}"
    if prediction.code is not None:
        text += f" with code {prediction.code}"
    if prediction.error:
        text += f": {prediction.error[:500]}"
    hint = _HINTS.get(prediction.code or 0)
    if hint is None and prediction.code is not None and 1000 <= prediction.code < 2000:
        hint = "fix the input and upload again"
    if hint is None and (is_retryable(prediction) or prediction.status in ("cancelled", "deleted")):
        hint = "a WaveSpeed-side problem: upload again later"
    return f"{text} ({hint})" if hint else text


class Tracker:
    def __init__(
        self,
        *,
        jobs: JobStore,
        sqs: Any,
        events: EventPublisher,
        wavespeed: Callable[[], WaveSpeedClient],
        settings: WebhookSettings,
    ) -> None:
        self._jobs = jobs
        self._sqs = sqs
        self._events = events
        self._wavespeed = wavespeed
        self._settings = settings

    def on_webhook(self, prediction_id: str) -> tuple[Job, str]:
        job = self._jobs.find_by_prediction(prediction_id)
        if job is None:
            raise JobNotFound(prediction_id)
        logger.thread_safe_append_keys(job_id=job.job_id)
        if job.status in TERMINAL_STATUSES or job.status is JobStatus.STORING:
            return job, "unchanged"  # a repeated delivery: answer without asking WaveSpeed again
        return self.apply(job, self._wavespeed().get_result(prediction_id), by="webhook")

    def apply(self, job: Job, prediction: Prediction, *, by: str) -> tuple[Job, str]:
        """Act on a task's authoritative state; return the job and what happened, in a word or two."""
        if job.prediction_id != prediction.id or job.status in TERMINAL_STATUSES:
            return job, "unchanged"
        status = prediction.status.lower()
        if status == "processing" and job.status is JobStatus.SUBMITTED:
            moved = self._jobs.transition(job.job_id, {JobStatus.SUBMITTED}, JobStatus.TRAINING)
            return (moved, "training") if moved else (job, "unchanged")
        if status == "completed":
            return self._completed(job, prediction, by)
        if status in ENDED_TASK_STATUSES and job.status in _ACTIVE:
            if is_retryable(prediction) and job.attempts < self._settings.max_attempts:
                return self._resubmit(job, prediction)
            code = str(prediction.code) if prediction.code is not None else status.upper()
            ended = end_job(
                self._jobs,
                self._events,
                job.job_id,
                _ACTIVE,
                JobStatus.FAILED,
                code,
                describe_failure(prediction),
            )
            return (ended, "failed") if ended else (job, "unchanged")
        if status not in ("created", "processing", *ENDED_TASK_STATUSES):
            logger.warning("unknown WaveSpeed task status", extra={"task_status": status[:40]})
        return job, "unchanged"

    def _completed(self, job: Job, prediction: Prediction, by: str) -> tuple[Job, str]:
        if job.status in _ACTIVE:
            if prediction.weights_url is None:
                ended = end_job(
                    self._jobs,
                    self._events,
                    job.job_id,
                    _ACTIVE,
                    JobStatus.FAILED,
                    "NO_OUTPUT",
                    f"WaveSpeed task {prediction.id} completed without any output file",
                )
                return (ended, "failed") if ended else (job, "unchanged")
            moved = self._jobs.transition(job.job_id, _ACTIVE, JobStatus.STORING)
            if moved is None:
                return job, "unchanged"
            self._enqueue_store(moved)
            return moved, "storing"
        if job.status is JobStatus.STORING and by == "reconciler":
            # The store message was lost or is still failing: queue it again (and restart the clock).
            touched = self._jobs.transition(
                job.job_id, {JobStatus.STORING}, JobStatus.STORING, note="store re-queued by the reconciler"
            )
            if touched is not None:
                self._enqueue_store(touched)
                return touched, "store re-queued"
        return job, "unchanged"

    def _resubmit(self, job: Job, prediction: Prediction) -> tuple[Job, str]:
        attempt = f"attempt {job.attempts + 1} of {self._settings.max_attempts}"
        note = f"{describe_failure(prediction)}; resubmitting ({attempt})"
        moved = self._jobs.transition(job.job_id, _ACTIVE, JobStatus.RECEIVED, note=note, remove=("prediction_id",))
        if moved is None:
            return job, "unchanged"
        self.enqueue_resubmit(moved)
        metrics.add_metric(name="TasksResubmitted", unit=MetricUnit.Count, value=1)
        return moved, "resubmitted"

    def _enqueue_store(self, job: Job) -> None:
        body = {"job_id": job.job_id, "prediction_id": job.prediction_id}
        self._sqs.send_message(QueueUrl=self._settings.store_queue_url, MessageBody=json.dumps(body))

    def enqueue_resubmit(self, job: Job) -> None:
        body = {"job_id": job.job_id, "action": "resubmit"}
        self._sqs.send_message(QueueUrl=self._settings.intake_queue_url, MessageBody=json.dumps(body))


class Reconciler:
    """Asks WaveSpeed about jobs that have waited too long, so a lost webhook costs minutes."""

    def __init__(
        self,
        tracker: Tracker,
        jobs: JobStore,
        events: EventPublisher,
        wavespeed: Callable[[], WaveSpeedClient],
        settings: ReconcileSettings,
    ) -> None:
        self._tracker = tracker
        self._jobs = jobs
        self._events = events
        self._wavespeed = wavespeed
        self._settings = settings

    def run(self, now: datetime | None = None) -> dict[str, int]:
        now = now or datetime.now(UTC)
        cutoff = (
            (now - timedelta(seconds=self._settings.reconcile_after_seconds))
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z")
        )
        limit = self._settings.reconcile_batch_limit
        summary: Counter[str] = Counter()
        for status in WAITING_ON_WAVESPEED:
            for job in self._jobs.stale(status, cutoff, limit):
                summary[self._check(job)] += 1
        for job in self._jobs.stale(JobStatus.SUBMITTING, cutoff, limit):
            # Never resubmitted: WaveSpeed may have created (and billed) the task.
            logger.error(
                "job stuck in SUBMITTING: outcome uncertain, needs a human",
                extra={"job_id": job.job_id, "since": job.updated_at, "error": job.error},
            )
            summary["uncertain"] += 1
        for job in self._jobs.stale(JobStatus.RECEIVED, cutoff, limit):
            if job.attempts > 0:  # a resubmission whose intake message may have been lost
                touched = self._jobs.transition(
                    job.job_id,
                    {JobStatus.RECEIVED},
                    JobStatus.RECEIVED,
                    note="resubmission re-queued by the reconciler",
                )
                if touched is not None:
                    self._tracker.enqueue_resubmit(touched)
                    summary["resubmission re-queued"] += 1
            else:
                summary["waiting for intake"] += 1
        metrics.add_metric(name="UncertainSubmissions", unit=MetricUnit.Count, value=summary["uncertain"])
        logger.info("reconciled", extra={"summary": dict(summary)})
        return dict(summary)

    def _check(self, job: Job) -> str:
        if not job.prediction_id:
            return "unchanged"
        logger.thread_safe_append_keys(job_id=job.job_id)
        try:
            prediction = self._wavespeed().get_result(job.prediction_id)
        except RequestRejected as err:
            if err.status == 404:  # WaveSpeed deletes task data after about 7 days
                gone = end_job(
                    self._jobs,
                    self._events,
                    job.job_id,
                    set(WAITING_ON_WAVESPEED),
                    JobStatus.FAILED,
                    "TASK_GONE",
                    f"WaveSpeed no longer knows task {job.prediction_id}: upload again",
                )
                return "failed" if gone else "unchanged"
            logger.warning("WaveSpeed refused the result request", extra={"reason": err.message})
            return "unreachable"
        except WaveSpeedError as err:
            logger.warning("WaveSpeed unreachable while reconciling", extra={"reason": err.message})
            return "unreachable"
        _, outcome = self._tracker.apply(job, prediction, by="reconciler")
        return outcome
