"""The reconciler: on a schedule, asks WaveSpeed about jobs that have waited too long (a lost webhook costs
minutes), settles uncertain submissions (`loradrop.settling`), re-queues lost messages and ends what cannot
finish. Each job is checked in isolation and in turn, to a deadline taken from the invocation's time.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from loradrop.codes import UNSETTLED, ErrorCode, Outcome
from loradrop.deadline import Deadline
from loradrop.job import Job, hours, iso, parse_iso, utc_now
from loradrop.jobs import JobStore
from loradrop.log_context import about_job, forget_job
from loradrop.models import (
    JobStatus,
)
from loradrop.ports import WaveSpeed
from loradrop.pricing import WAITS
from loradrop.sample_reconciling import SampleReconciler
from loradrop.samples import SampleStatus
from loradrop.settings import ReconcileSettings
from loradrop.settling import (
    CLOCK_SKEW,
    Attempt,
    Settler,
    read_history,
)
from loradrop.tracking import TASK_RETENTION, Tracker
from loradrop.wavespeed import NotFound, WaveSpeedError

logger = Logger(child=True)
metrics = Metrics()


class OutOfTime(Exception):
    """The invocation is nearly over: the rest waits for the next run."""


# The reconciler's time: it stops taking jobs this long before the invocation ends (its metrics must be
# flushed), gives no job more than JOB_SHARE (a settle with thousands of tasks to check goes on next run),
# and takes a job only with at least JOB_MINIMUM left.
FLUSH_SECONDS = 10.0
JOB_SHARE_SECONDS = 120.0  # a busy window's whole history (113 pages at 5,000 starts a minute) fits in one share
JOB_MINIMUM_SECONDS = 2.0


class Reconciler:
    """Asks WaveSpeed about jobs that have waited too long, so a lost webhook costs minutes, and
    settles uncertain submissions from WaveSpeed's records. One job's trouble never stops the run,
    and a job it leaves as it was goes to the back of the queue, so every stale job has its turn."""

    def __init__(
        self,
        tracker: Tracker,
        jobs: JobStore,
        wavespeed: Callable[[], WaveSpeed],
        settings: ReconcileSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock  # what the run's deadlines are measured on
        self._tracker = tracker
        self._jobs = jobs
        self._wavespeed = wavespeed
        self._settings = settings
        self._settler = Settler(
            jobs=jobs,
            wavespeed=wavespeed,
            settings=settings,
            adopt=lambda job, task, evidence: tracker.adopt(job, task, evidence)[1],
            record_stray=tracker.take_stray,
            resubmit=tracker.enqueue_resubmit,
        )
        self._samples = SampleReconciler(tracker.samples, jobs, wavespeed, settings)

    def run(self, now: datetime | None = None, remaining_ms: Callable[[], int] | None = None) -> dict[Outcome, int]:
        """One pass. `remaining_ms` is the invocation's time left: every WaveSpeed call fits in it, and the
        pass stops in time to flush its metrics, leaving the rest for the next run."""
        now = now or datetime.now(UTC)
        left = (remaining_ms() / 1000 - FLUSH_SECONDS) if remaining_ms is not None else 15 * 60.0
        run_deadline = Deadline.within(left, self._clock)
        after = timedelta(seconds=self._settings.reconcile_after_seconds)
        passes: list[tuple[JobStatus | SampleStatus, timedelta, Callable[[Any, datetime, Deadline], Outcome]]] = [
            (JobStatus.SUBMITTING, after, self._settle),
            (JobStatus.SUBMITTED, after, self._check),
            (JobStatus.TRAINING, after, self._check),
            (JobStatus.STORING, after, self._check),
            (JobStatus.RECEIVED, 2 * after, self._requeue_received),
            *self._samples.passes(after),  # the sample images' tasks (`loradrop.samples`)
        ]
        summary: Counter[Outcome] = Counter()
        oldest: list[datetime] = []
        seen: set[str] = set()  # a job one pass moved is not handled again by a later pass
        listed = True
        try:
            for status, waited, check in passes:
                keys = self._stale(status, iso(now - waited))
                for job_id, updated_at in keys:
                    if job_id in seen:
                        continue
                    seen.add(job_id)
                    if run_deadline.remaining() < JOB_MINIMUM_SECONDS:
                        raise OutOfTime
                    job_deadline = run_deadline.sooner(JOB_SHARE_SECONDS)
                    summary[self._isolated(check, job_id, status, updated_at, now, job_deadline, oldest)] += 1
                listed = listed and keys.listed
        except OutOfTime:
            summary[Outcome.LEFT_FOR_NEXT_RUN] += 1
            logger.warning("reconciler stopped early: out of time")
        if not listed:
            summary[Outcome.ERROR] += 1  # the oldest waiting job is not known: no figure rather than a wrong one
        else:
            age = (now - min(oldest)).total_seconds() if oldest else 0.0
            metrics.add_metric(name="OldestWaitingJobAgeSeconds", unit=MetricUnit.Seconds, value=max(0.0, age))
        uncertain = sum(summary[outcome] for outcome in UNSETTLED)
        metrics.add_metric(name="UncertainSubmissions", unit=MetricUnit.Count, value=uncertain)
        logger.info("reconciled", extra={"summary": dict(summary)})
        return dict(summary)

    def _stale(self, status: JobStatus | SampleStatus, before: str) -> _Listed:
        return _Listed(lambda: self._jobs.stale_keys(status, before, self._settings.reconcile_batch_limit), status)

    def _isolated(  # noqa: PLR0913, PLR0917 - one job's turn: which, as listed, and the run's clock
        self,
        check: Callable[[Any, datetime, Deadline], Outcome],
        job_id: str,
        status: JobStatus | SampleStatus,
        updated_at: str,
        now: datetime,
        deadline: Deadline,
        oldest: list[datetime],
    ) -> Outcome:
        """Everything done with one job, reading it included: whatever it raises is logged and counted, and
        the job goes to the back of its queue like one that came back unchanged."""
        about_job(job_id)
        try:
            if isinstance(status, SampleStatus):
                sample = self._jobs.get_sample(job_id)
                if sample is None or sample.status is not status:
                    return Outcome.UNCHANGED  # moved (or unreadable) since it was listed
                about_job(sample.parent_job_id, sample.prediction_id)
                return check(sample, now, deadline)
            job = self._jobs.get(job_id)
            if job is None or job.status is not status:
                return Outcome.UNCHANGED  # moved (or deleted) since it was listed
            about_job(job_id, job.prediction_id)
            _note_age(job, oldest)
            return check(job, now, deadline)
        except Exception:
            logger.exception("reconciling a job failed; it is tried again in its turn")
            metrics.add_metric(name="ReconcileErrors", unit=MetricUnit.Count, value=1)
            return Outcome.ERROR
        finally:
            try:
                self._jobs.touch(job_id, status.value, updated_at)  # a no-op if the check wrote the job
            except Exception:
                logger.exception("could not mark the job as checked")
            forget_job()

    def _check(self, job: Job, now: datetime, deadline: Deadline) -> Outcome:
        if not job.prediction_id:
            return Outcome.UNCHANGED
        if job.status is JobStatus.STORING and job.store_lease_until and job.store_lease_until > utc_now():
            return Outcome.COPY_RUNNING  # nothing ends or re-queues a job under a running copy
        try:
            task = self._wavespeed().get_result(job.prediction_id, deadline)
        except NotFound:
            return self._task_not_found(job, now, deadline)
        except WaveSpeedError as err:  # a proxy's 404 page included: only WaveSpeed says a task is gone
            logger.warning("WaveSpeed unreachable while reconciling", extra={"reason": err.message})
            return Outcome.UNREACHABLE
        if job.task_missing_since:
            cleared = self._jobs.task_missing(job, None)
            job = cleared.job if cleared.done and cleared.job is not None else job  # moved meanwhile: as it was read
        _, outcome = self._tracker.apply(job, task, by="reconciler")
        return outcome

    def _task_not_found(self, job: Job, now: datetime, deadline: Deadline) -> Outcome:
        """A 404 for the job's task, in WaveSpeed's JSON shape (a gateway can answer in the same shape). The
        job ends TASK_GONE only when the 404 holds on runs minutes apart and WaveSpeed's complete history of
        the task's window no longer lists it; or at once for a task near WaveSpeed's 7-day deletion; or when
        the 404s have lasted the whole settle deadline, whatever the history says."""
        first = job.task_missing_since
        old = now - parse_iso(job.submit_started_at or job.created_at) >= TASK_RETENTION
        if not old and first is None:
            self._jobs.task_missing(job, iso(now))
            return Outcome.TASK_NOT_FOUND
        missing = now - parse_iso(first or iso(now))
        if not old and missing < timedelta(seconds=self._settings.settle_deadline_seconds):
            if missing < timedelta(seconds=self._settings.absence_confirm_seconds):
                return Outcome.TASK_NOT_FOUND
            listed = self._listed(job, deadline)
            if listed is None:
                return Outcome.TASK_NOT_FOUND  # the history could not say: ask again next run
            if listed:
                return Outcome.UNREACHABLE  # WaveSpeed still lists it: the 404s were not WaveSpeed's word
        ended = self._jobs.end(
            job.job_id,
            {job.status},
            JobStatus.FAILED,
            ErrorCode.TASK_GONE,
            f"WaveSpeed no longer knows task {job.prediction_id} (it answered 404 from {first} on, and its history "
            f"no longer lists it): `loradrop retry {job.job_id}`, or upload again",
            unless_copying=job.status is JobStatus.STORING,
        )
        return Outcome.FAILED if ended.done else Outcome.UNCHANGED

    def _listed(self, job: Job, deadline: Deadline) -> bool | None:
        """Whether WaveSpeed's history lists the job's task: around the time WaveSpeed gave for it (a task taken
        from an earlier attempt was created in that attempt's window), else in its POST's window; None if the
        history could not be read in full."""
        attempt = Attempt.of(job, self._settings.submit_timeout_seconds)
        window = attempt.window
        if job.task_created_at:
            try:
                created = parse_iso(job.task_created_at)
                window = (created - CLOCK_SKEW, created + CLOCK_SKEW)
            except ValueError:
                return None
        listing = read_history(self._wavespeed(), attempt.model, window, deadline)
        if any(task.id == job.prediction_id for task in listing.tasks):
            return True
        return False if listing.complete else None

    def _settle(self, job: Job, now: datetime, deadline: Deadline) -> Outcome:
        return self._settler.settle(job, now, deadline)

    def _requeue_received(self, job: Job, now: datetime, deadline: Deadline) -> Outcome:
        """A RECEIVED job nobody has touched for a while: its intake message was lost (or ended in the
        DLQ). Queue it again, or end it once it has waited longer than the settle deadline since it entered
        RECEIVED (a job retried days after its upload has the whole deadline again)."""
        limit = timedelta(seconds=self._settings.settle_deadline_seconds)
        if now - parse_iso(job.entered(JobStatus.RECEIVED) or job.created_at) > limit:
            ended = self._jobs.end(
                job.job_id,
                {JobStatus.RECEIVED},
                JobStatus.FAILED,
                *_why_not_submitted(job, limit),
            )
            return Outcome.FAILED if ended.done else Outcome.UNCHANGED
        touched = self._jobs.requeue_received(job.job_id, "submission re-queued by the reconciler")
        if not touched.done or touched.job is None:
            return Outcome.UNCHANGED
        self._tracker.enqueue_resubmit(touched.job)
        return Outcome.RESUBMISSION_REQUEUED


def _why_not_submitted(job: Job, limit: timedelta) -> tuple[ErrorCode, str]:
    """The code and reason of a RECEIVED job that ran out of time: what it waited for (a price, the balance), or
    rate limits and outages."""
    if job.error_code in WAITS:
        code = ErrorCode(job.error_code)
        return code, f"{job.error}. Gave up after {hours(limit)}: `loradrop retry {job.job_id}` once that is mended"
    return (
        ErrorCode.NOT_SUBMITTED,
        f"the upload could not be submitted to WaveSpeed within {hours(limit)} (rate limits or an outage; see "
        f"SubmitTraining's logs): `loradrop retry {job.job_id}` when WaveSpeed accepts tasks again",
    )


def _note_age(job: Job, oldest: list[datetime]) -> None:
    """The job's creation time, for the oldest-waiting-job metric; an odd one is counted, and the job is
    still checked."""
    try:
        created = parse_iso(job.created_at)
        if created.tzinfo is None:
            raise ValueError("no time zone")
        oldest.append(created)
    except ValueError:
        logger.warning("job's created_at is not a time", extra={"created_at": job.created_at[:40]})
        metrics.add_metric(name="ReconcileErrors", unit=MetricUnit.Count, value=1)


class _Listed:
    """A state's stale jobs as listed, one page at a time; a listing that fails ends that state's pass,
    logged and counted, and says so (`listed`)."""

    def __init__(self, keys: Callable[[], Iterable[tuple[str, str]]], status: JobStatus | SampleStatus) -> None:
        self._keys = keys
        self._status = status
        self.listed = True

    def __iter__(self) -> Iterator[tuple[str, str]]:
        try:
            yield from self._keys()
        except Exception:
            logger.exception("could not list stale jobs", extra={"status": self._status.value})
            metrics.add_metric(name="ReconcileErrors", unit=MetricUnit.Count, value=1)
            self.listed = False
