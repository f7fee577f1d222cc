"""WaveSpeed task state → job state. One code path for the webhook and the reconciler.

WaveSpeed's answer to GET /predictions/{id}/result is the truth; a webhook body only says which
task to ask about. Every move is a conditional write, so repeated or out-of-order deliveries
change nothing.

A submission whose outcome is uncertain (no usable answer to the POST) is settled by evidence,
never by a blind retry: the task's signed webhook, whose `input.data` is the exact ZIP link the
job's attempt sent, adopts it; otherwise the reconciler settles it from WaveSpeed's prediction
history (`loradrop.settling`). A task of an earlier attempt that turns up later is never forgotten:
it becomes the job's task if no POST is in flight, and is recorded on the job (and alarmed) otherwise.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from itertools import chain

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from loradrop.deadline import Deadline
from loradrop.ending import end_job
from loradrop.jobs import (
    COPY_FAILED_NOTE,
    Job,
    JobStore,
    iso,
    job_id_for,
    lease_free,
    parse_iso,
    task_fields,
    url_digest,
    utc_now,
)
from loradrop.log_context import about_job, forget_job
from loradrop.messages import StoreRequest, SubmitRequest
from loradrop.models import (
    ENDED_TASK_STATUSES,
    KNOWN_TASK_STATUSES,
    TERMINAL_STATUSES,
    JobStatus,
    Prediction,
    describe_failure,
    is_retryable,
    retry_kind,
)
from loradrop.ports import QueueSender, WaveSpeed
from loradrop.settings import ReconcileSettings, TrackingSettings
from loradrop.settling import (
    CLOCK_SKEW,
    UNSETTLED,
    Attempt,
    Settler,
    hours,
    link_object,
    names_object,
    read_history,
)
from loradrop.wavespeed import NotFound, WaveSpeedError

logger = Logger(child=True)
metrics = Metrics()

_ACTIVE = {JobStatus.SUBMITTED, JobStatus.TRAINING}
# WaveSpeed deletes a task's data after about 7 days: a task this old that it does not know is gone.
TASK_RETENTION = timedelta(days=6, hours=12)
STRAY_TRIES = 3  # reads and writes of a job that keeps moving under a stray task's record


class JobNotFound(LookupError):
    """No job has this WaveSpeed task id (yet)."""


class Tracker:
    def __init__(
        self,
        *,
        jobs: JobStore,
        sqs: QueueSender,
        wavespeed: Callable[[], WaveSpeed],
        settings: TrackingSettings,
    ) -> None:
        self._jobs = jobs
        self._sqs = sqs
        self._wavespeed = wavespeed
        self._settings = settings

    def on_webhook(
        self, hint: Prediction, job_hint: str | None = None, deadline: Deadline | None = None
    ) -> tuple[Job, str]:
        """A verified webhook. `hint` is its signed body; `job_hint` the unsigned job id from the URL."""
        job = self._jobs.find_by_prediction(hint.id)
        if job is None:
            return self._claim_from_webhook(hint, job_hint, deadline)
        about_job(job.job_id, hint.id)
        if job.status is JobStatus.FAILED and job.error_code == "TASK_GONE":  # WaveSpeed's 404s were not the end
            return job, self.revive(job, self._wavespeed().get_result(hint.id, deadline), "its signed webhook") or (
                "unchanged"
            )
        if job.status in TERMINAL_STATUSES or job.status is JobStatus.STORING:
            return job, "unchanged"  # a repeated delivery: answer without asking WaveSpeed again
        return self.apply(job, self._wavespeed().get_result(hint.id, deadline), by="webhook")

    def _claim_from_webhook(self, hint: Prediction, job_hint: str | None, deadline: Deadline | None) -> tuple[Job, str]:
        """A task no job has recorded. Its signed `input.data` is the ZIP link it was created with: the
        uncertain submission that sent exactly that link adopts it; a job whose earlier attempt sent it
        takes it as a stray. WaveSpeed's own GET confirms either before anything is written."""
        if hint.data_url is None:
            raise JobNotFound(hint.id)
        link = url_digest(hint.data_url)
        job = self.uncertain_owner(link, hint.id, job_hint) or self._earlier_owner(link, hint.data_url, job_hint)
        if job is None:
            raise JobNotFound(hint.id)
        about_job(job.job_id, hint.id)
        confirmed = self._wavespeed().get_result(hint.id, deadline)
        if confirmed.data_url is not None and url_digest(confirmed.data_url) != link:
            logger.warning("webhook's task belongs to another upload by WaveSpeed's GET", extra={"task": hint.id})
            raise JobNotFound(hint.id)
        if confirmed.data_url is None:  # the GET may leave `input` out: the signed body names the link
            confirmed = confirmed.model_copy(update={"input": hint.input})
        if job.status is JobStatus.SUBMITTING and link == job.submit_url_sha256:
            return self.adopt(job, confirmed, "its signed webhook", by="webhook")
        return job, self.take_stray(job, confirmed, "its signed webhook")

    def uncertain_owner(self, link: str, task_id: str, job_hint: str | None = None) -> Job | None:
        """The job whose current submission sent exactly this ZIP link and has no task yet."""
        hinted = [self._jobs.get(job_hint)] if job_hint else []
        for job in chain(hinted, self._jobs.in_status(JobStatus.SUBMITTING)):  # the scan only if the hint misses
            if (
                job is not None
                and job.status is JobStatus.SUBMITTING
                and job.submit_url_sha256 == link
                and task_id not in job.task_ids()
            ):
                return job
        return None

    def _earlier_owner(self, link: str, data_url: str, job_hint: str | None) -> Job | None:
        """The job any of whose attempts sent this link, found by the URL's job hint or by the upload the link
        names (a versioned object's id is the job's identity); either is only a lead: the link must be one the
        job sent, or at least name the job's own S3 object (a link re-encoded on the way)."""
        for job_id in dict.fromkeys(filter(None, (job_hint, _job_id_from_link(data_url)))):
            job = self._jobs.get(job_id)
            if job is not None and (
                link in job.attempt_links() or names_object(data_url, job.source_bucket, job.source_key)
            ):
                return job
        return None

    def adopt(self, job: Job, prediction: Prediction, evidence: str, *, by: str = "reconciler") -> tuple[Job, str]:
        """Record a task found for a SUBMITTING job — only while the job is still on the attempt whose link
        the task names — then act on its state like any other."""
        adopted = self._jobs.transition(
            job.job_id,
            {JobStatus.SUBMITTING},
            JobStatus.SUBMITTED,
            fields=task_fields(prediction),
            note=f"task adopted: {evidence}",
            remove=("error", "error_code", "settling"),
            guard="submit_url_sha256 = :link",
            guard_values={":link": job.submit_url_sha256},
        )
        if adopted is None:  # the job moved on while WaveSpeed was asked
            current = self._jobs.get(job.job_id)
            if current is None or (current.prediction_id != prediction.id and prediction.id in current.task_ids()):
                return current or job, "unchanged"
            if current.prediction_id != prediction.id:
                # Its attempt was settled meanwhile (proven lost, or a new one began): the task is an earlier
                # attempt's now, and is never forgotten.
                return current, self.take_stray(current, prediction, evidence)
            adopted = current  # recorded meanwhile (the submitter's own write, or another delivery)
        else:
            metrics.add_metric(name="TasksAdopted", unit=MetricUnit.Count, value=1)
            logger.info("task adopted", extra={"prediction_id": prediction.id, "evidence": evidence})
        job, outcome = self.apply(adopted, prediction, by=by)
        return job, "adopted" if outcome == "unchanged" else f"adopted, {outcome}"

    def take_stray(self, job: Job, task: Prediction, evidence: str) -> str:
        """A task of one of the job's earlier attempts (WaveSpeed's word names its link). With no POST in
        flight (RECEIVED) and the task not ended, it becomes the job's task, saving a new paid one; otherwise
        it is recorded on the job and counted, and the StrayTasks alarm asks a person to look. Never dropped:
        if the job keeps moving under it, this raises (a webhook is then answered 5xx and comes again)."""
        about_job(job.job_id, task.id)
        for _ in range(STRAY_TRIES):
            if task.id in job.task_ids():  # recorded already (counted then): stored if it completed since
                revived = task.id in job.stray_tasks and self.revive(job, task, evidence, counted=False)
                return revived or "unchanged"
            outcome = self._take_stray_once(job, task, evidence)
            if outcome is not None:
                return outcome
            job = self._jobs.get(job.job_id) or job  # it moved meanwhile: look again
        raise RuntimeError(f"task {task.id} could not be recorded on job {job.job_id}: the job kept moving")

    def _take_stray_once(self, job: Job, task: Prediction, evidence: str) -> str | None:
        # An attempt that ended SUBMIT_UNSETTLED still counts its task as one that may exist.
        link = url_digest(task.data_url or "")
        counted = not (job.error_code == "SUBMIT_UNSETTLED" and link == job.submit_url_sha256)
        if job.status is JobStatus.FAILED and (revived := self.revive(job, task, evidence, counted=counted)):
            return revived
        if job.status is JobStatus.RECEIVED and task.status not in ENDED_TASK_STATUSES:
            taken = self._jobs.transition(
                job.job_id,
                {JobStatus.RECEIVED},
                JobStatus.SUBMITTED,
                fields=task_fields(task),
                note=f"a task of an earlier attempt turned up ({evidence}) and is taken instead of a new one",
                attempts=1,
                remove=("error", "error_code"),
            )
            if taken is None:
                return None
            _turned_up("an earlier attempt's task was taken instead of a new one", task)
            _, outcome = self.apply(taken, task, by="reconciler")
            return "earlier task taken" if outcome == "unchanged" else f"earlier task taken, {outcome}"
        recorded = self._jobs.record_stray_task(
            job,
            task.id,
            f"WaveSpeed task {task.id} of an earlier attempt turned up ({evidence}; {task.status}): it was paid "
            "for; its output stays at WaveSpeed for about 7 days",
            counted=counted,
        )
        if recorded is None:
            return None
        _turned_up("a task of an earlier attempt was recorded", task)
        return "stray task recorded"

    def revive(self, job: Job, task: Prediction, evidence: str, *, counted: bool = False) -> str | None:
        """A FAILED job none of whose weights were stored, and a task of it that turns up completed (a late
        task, or one WaveSpeed's 404s wrongly gave up): its weights are the user's paid output, so they are
        stored. `counted`: the task adds to `attempts`. None when the job or the task is not such a one."""
        if job.status is not JobStatus.FAILED or retry_kind(job.error_code) == "store":
            return None
        if task.status != "completed" or task.weights_url is None:
            return None
        revived = self._jobs.transition(
            job.job_id,
            {JobStatus.FAILED},
            JobStatus.STORING,
            fields=task_fields(task),
            note=f"task {task.id} turned up completed ({evidence}) after the job failed [{job.error_code}]: "
            "its weights are stored",
            attempts=1 if counted else 0,
            remove=("error", "error_code", "task_missing_since"),
            guard="error_code = :code",
            guard_values={":code": job.error_code},
        )
        if revived is None:
            return None
        _turned_up("a failed job's task turned up completed; storing it", task)
        self._enqueue_store(revived)
        return "failed job revived, storing"

    def apply(self, job: Job, prediction: Prediction, *, by: str) -> tuple[Job, str]:
        """Act on a task's authoritative state; return the job and what happened, in a word or two."""
        if job.prediction_id != prediction.id or job.status in TERMINAL_STATUSES:
            return job, "unchanged"
        status = prediction.status
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
                job.job_id,
                _ACTIVE,
                JobStatus.FAILED,
                code,
                describe_failure(prediction),
            )
            return (ended, "failed") if ended else (job, "unchanged")
        if status not in KNOWN_TASK_STATUSES:
            logger.warning("unknown WaveSpeed task status", extra={"task_status": status})
        return job, "unchanged"

    def _completed(self, job: Job, prediction: Prediction, by: str) -> tuple[Job, str]:
        if job.status in _ACTIVE:
            if prediction.weights_url is None:
                ended = end_job(
                    self._jobs,
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
            return self._restart_store(job)
        return job, "unchanged"

    def _restart_store(self, job: Job) -> tuple[Job, str]:
        """The store message was lost, or its copy died: queue it again — unless a copy holds the
        lease (it is still running), or copies were restarted too often to hope."""
        now = utc_now()
        if job.store_lease_until and job.store_lease_until > now:
            return job, "copy running"
        if job.store_requeues >= self._settings.store_max_requeues:
            last = job.last_note(COPY_FAILED_NOTE)
            why = f"the last try said: {last.removeprefix(COPY_FAILED_NOTE + ': ')}" if last else "a timeout?"
            ended = end_job(
                self._jobs,
                job.job_id,
                {JobStatus.STORING},
                JobStatus.FAILED,
                "STORE_FAILED",
                f"the copy of task {job.prediction_id}'s weights was restarted {job.store_requeues} times and never "
                f"finished ({why}; see StoreWeights' logs); `loradrop retry {job.job_id}` copies it again while "
                "WaveSpeed keeps the output (about 7 days)",
                remove=("store_lease_until", "store_lease_owner"),
                **lease_free(now),
            )
            return (ended, "failed") if ended else (job, "unchanged")
        touched = self._jobs.transition(
            job.job_id,
            {JobStatus.STORING},
            JobStatus.STORING,
            note="store re-queued by the reconciler",
            increment=("store_requeues",),
            **lease_free(now),
        )
        if touched is None:
            return job, "unchanged"
        self._enqueue_store(touched)
        return touched, "store re-queued"

    def _resubmit(self, job: Job, prediction: Prediction) -> tuple[Job, str]:
        attempt = f"attempt {job.attempts + 1} of {self._settings.max_attempts}"
        note = f"{describe_failure(prediction)}; resubmitting ({attempt})"
        moved = self._jobs.transition(
            job.job_id, _ACTIVE, JobStatus.RECEIVED, note=note, remove=("prediction_id", "task_created_at")
        )
        if moved is None:
            return job, "unchanged"
        self.enqueue_resubmit(moved)
        metrics.add_metric(name="TasksResubmitted", unit=MetricUnit.Count, value=1)
        return moved, "resubmitted"

    def _enqueue_store(self, job: Job) -> None:
        assert job.prediction_id is not None  # a job reaches STORING only with its task
        body = StoreRequest(job_id=job.job_id, prediction_id=job.prediction_id).model_dump_json()
        self._sqs.send_message(QueueUrl=self._settings.store_queue_url, MessageBody=body)

    def enqueue_resubmit(self, job: Job) -> None:
        body = SubmitRequest(job_id=job.job_id, action="resubmit").model_dump_json()
        self._sqs.send_message(QueueUrl=self._settings.intake_queue_url, MessageBody=body)


def _turned_up(what: str, task: Prediction) -> None:
    """A task loradrop had given up on turned up (a settle that concluded "absent", a 404 that said "gone", a
    race): taken, stored or recorded, it is counted, and the StrayTasks alarm asks a person to look why."""
    metrics.add_metric(name="StrayTasks", unit=MetricUnit.Count, value=1)
    logger.warning(what, extra={"prediction_id": task.id})


def _job_id_from_link(url: str) -> str | None:
    """The job a presigned ZIP link was made for, when it names an object version (a versioned uploads bucket,
    as the template's is: the version is the job's identity)."""
    found = link_object(url)
    return job_id_for(found[0], found[1], found[2], None) if found and found[2] else None


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

    def run(self, now: datetime | None = None, remaining_ms: Callable[[], int] | None = None) -> dict[str, int]:
        """One pass. `remaining_ms` is the invocation's time left: every WaveSpeed call fits in it, and the
        pass stops in time to flush its metrics, leaving the rest for the next run."""
        now = now or datetime.now(UTC)
        left = (remaining_ms() / 1000 - FLUSH_SECONDS) if remaining_ms is not None else 15 * 60.0
        run_deadline = Deadline.within(left, self._clock)
        after = timedelta(seconds=self._settings.reconcile_after_seconds)
        passes: list[tuple[JobStatus, timedelta, Callable[[Job, datetime, Deadline], str]]] = [
            (JobStatus.SUBMITTING, after, self._settle),
            (JobStatus.SUBMITTED, after, self._check),
            (JobStatus.TRAINING, after, self._check),
            (JobStatus.STORING, after, self._check),
            (JobStatus.RECEIVED, 2 * after, self._requeue_received),
        ]
        summary: Counter[str] = Counter()
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
            summary["left for the next run"] += 1
            logger.warning("reconciler stopped early: out of time")
        if not listed:
            summary["error"] += 1  # the oldest waiting job is not known: no figure rather than a wrong one
        else:
            age = (now - min(oldest)).total_seconds() if oldest else 0.0
            metrics.add_metric(name="OldestWaitingJobAgeSeconds", unit=MetricUnit.Seconds, value=max(0.0, age))
        uncertain = sum(summary[outcome] for outcome in UNSETTLED)
        metrics.add_metric(name="UncertainSubmissions", unit=MetricUnit.Count, value=uncertain)
        logger.info("reconciled", extra={"summary": dict(summary)})
        return dict(summary)

    def _stale(self, status: JobStatus, before: str) -> _Listed:
        return _Listed(lambda: self._jobs.stale_keys(status, before, self._settings.reconcile_batch_limit), status)

    def _isolated(  # noqa: PLR0913, PLR0917 - one job's turn: which, as listed, and the run's clock
        self,
        check: Callable[[Job, datetime, Deadline], str],
        job_id: str,
        status: JobStatus,
        updated_at: str,
        now: datetime,
        deadline: Deadline,
        oldest: list[datetime],
    ) -> str:
        """Everything done with one job, reading it included: whatever it raises is logged and counted, and
        the job goes to the back of its queue like one that came back unchanged."""
        about_job(job_id)
        try:
            job = self._jobs.get(job_id)
            if job is None or job.status is not status:
                return "unchanged"  # moved (or deleted) since it was listed
            about_job(job_id, job.prediction_id)
            _note_age(job, oldest)
            return check(job, now, deadline)
        except Exception:
            logger.exception("reconciling a job failed; it is tried again in its turn")
            metrics.add_metric(name="ReconcileErrors", unit=MetricUnit.Count, value=1)
            return "error"
        finally:
            try:
                self._jobs.touch(job_id, status.value, updated_at)  # a no-op if the check wrote the job
            except Exception:
                logger.exception("could not mark the job as checked")
            forget_job()

    def _check(self, job: Job, now: datetime, deadline: Deadline) -> str:
        if not job.prediction_id:
            return "unchanged"
        if job.status is JobStatus.STORING and job.store_lease_until and job.store_lease_until > utc_now():
            return "copy running"  # nothing ends or re-queues a job under a running copy
        try:
            prediction = self._wavespeed().get_result(job.prediction_id, deadline)
        except NotFound:
            return self._task_not_found(job, now, deadline)
        except WaveSpeedError as err:  # a proxy's 404 page included: only WaveSpeed says a task is gone
            logger.warning("WaveSpeed unreachable while reconciling", extra={"reason": err.message})
            return "unreachable"
        if job.task_missing_since:
            job = self._jobs.transition(job.job_id, {job.status}, job.status, remove=("task_missing_since",)) or job
        _, outcome = self._tracker.apply(job, prediction, by="reconciler")
        return outcome

    def _task_not_found(self, job: Job, now: datetime, deadline: Deadline) -> str:
        """A 404 for the job's task, in WaveSpeed's JSON shape (a gateway can answer in the same shape). The
        job ends TASK_GONE only when the 404 holds on runs minutes apart and WaveSpeed's complete history of
        the task's window no longer lists it; or at once for a task near WaveSpeed's 7-day deletion; or when
        the 404s have lasted the whole settle deadline, whatever the history says."""
        first = job.task_missing_since
        old = now - parse_iso(job.submit_started_at or job.created_at) >= TASK_RETENTION
        if not old and first is None:
            self._jobs.transition(job.job_id, {job.status}, job.status, fields={"task_missing_since": iso(now)})
            return "task not found, confirming"
        missing = now - parse_iso(first or iso(now))
        if not old and missing < timedelta(seconds=self._settings.settle_deadline_seconds):
            if missing < timedelta(seconds=self._settings.absence_confirm_seconds):
                return "task not found, confirming"
            listed = self._listed(job, deadline)
            if listed is None:
                return "task not found, confirming"  # the history could not say: ask again next run
            if listed:
                return "unreachable"  # WaveSpeed still lists it: the 404s were not WaveSpeed's word
        lease = lease_free(utc_now()) if job.status is JobStatus.STORING else {}
        ended = end_job(
            self._jobs,
            job.job_id,
            {job.status},
            JobStatus.FAILED,
            "TASK_GONE",
            f"WaveSpeed no longer knows task {job.prediction_id} (it answered 404 from {first} on, and its history "
            f"no longer lists it): `loradrop retry {job.job_id}`, or upload again",
            remove=("task_missing_since", "store_lease_until", "store_lease_owner"),
            **lease,
        )
        return "failed" if ended else "unchanged"

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

    def _settle(self, job: Job, now: datetime, deadline: Deadline) -> str:
        return self._settler.settle(job, now, deadline)

    def _requeue_received(self, job: Job, now: datetime, deadline: Deadline) -> str:
        """A RECEIVED job nobody has touched for a while: its intake message was lost (or ended in the
        DLQ). Queue it again, or end it once it has waited longer than the settle deadline since it entered
        RECEIVED (a job retried days after its upload has the whole deadline again)."""
        limit = timedelta(seconds=self._settings.settle_deadline_seconds)
        if now - parse_iso(job.entered(JobStatus.RECEIVED) or job.created_at) > limit:
            ended = end_job(
                self._jobs,
                job.job_id,
                {JobStatus.RECEIVED},
                JobStatus.FAILED,
                "NOT_SUBMITTED",
                f"the upload could not be submitted to WaveSpeed within {hours(limit)} (rate limits or an outage; "
                f"see SubmitTraining's logs): `loradrop retry {job.job_id}` when WaveSpeed accepts tasks again",
            )
            return "failed" if ended else "unchanged"
        touched = self._jobs.transition(
            job.job_id, {JobStatus.RECEIVED}, JobStatus.RECEIVED, note="submission re-queued by the reconciler"
        )
        if touched is None:
            return "unchanged"
        self._tracker.enqueue_resubmit(touched)
        return "resubmission re-queued"


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

    def __init__(self, keys: Callable[[], Iterable[tuple[str, str]]], status: JobStatus) -> None:
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
