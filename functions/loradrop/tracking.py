"""WaveSpeed task state → job state. One code path for the webhook and the reconciler.

WaveSpeed's answer to GET /predictions/{id}/result is the truth; a webhook body only says which
task to ask about. Every move is a conditional write, so repeated or out-of-order deliveries
change nothing.

A submission whose outcome is uncertain (no usable answer to the POST) is settled by evidence,
never by a blind retry: the task's signed webhook, whose `input.data` is the exact ZIP link the
job's attempt sent, adopts it; otherwise the reconciler reads WaveSpeed's prediction history
around the POST and adopts the task it finds, or — once the history proves nothing was created —
submits again. Records that stay ambiguous end the job FAILED after a bounded time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from itertools import chain

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from loradrop.ending import end_job
from loradrop.jobs import COPY_FAILED_NOTE, Job, JobStore, iso, parse_iso, url_digest, utc_now
from loradrop.log_context import about_job, forget_job
from loradrop.messages import StoreRequest, SubmitRequest
from loradrop.models import (
    ENDED_TASK_STATUSES,
    KNOWN_TASK_STATUSES,
    TERMINAL_STATUSES,
    TRAINER_MODELS,
    JobStatus,
    Prediction,
    describe_failure,
    is_retryable,
)
from loradrop.ports import JobEvents, QueueSender, WaveSpeed
from loradrop.settings import ReconcileSettings, TrackingSettings
from loradrop.wavespeed import (
    HISTORY_PAGE_SIZE,
    RequestRejected,
    WaveSpeedError,
    longest_submit_seconds,
)

logger = Logger(child=True)
metrics = Metrics()

_ACTIVE = {JobStatus.SUBMITTED, JobStatus.TRAINING}
_LEASE_FREE = "attribute_not_exists(store_lease_until) OR store_lease_until < :now"

# Settling uncertain submissions
CLOCK_SLACK = timedelta(seconds=120)  # our clock vs WaveSpeed's created_at
MAX_HISTORY_PAGES = 5  # per job and run: 500 tasks in the few minutes around one POST
MAX_CANDIDATE_CHECKS = 20  # authoritative GETs per job and run
MAX_LOST_SUBMISSIONS = 3  # POSTs proven to have created nothing before the job gives up


class JobNotFound(LookupError):
    """No job has this WaveSpeed task id (yet)."""


class Tracker:
    def __init__(
        self,
        *,
        jobs: JobStore,
        sqs: QueueSender,
        events: JobEvents,
        wavespeed: Callable[[], WaveSpeed],
        settings: TrackingSettings,
    ) -> None:
        self._jobs = jobs
        self._sqs = sqs
        self._events = events
        self._wavespeed = wavespeed
        self._settings = settings

    def on_webhook(self, hint: Prediction, job_hint: str | None = None) -> tuple[Job, str]:
        """A verified webhook. `hint` is its signed body; `job_hint` the unsigned job id from the URL."""
        job = self._jobs.find_by_prediction(hint.id)
        if job is None:
            return self._adopt_from_webhook(hint, job_hint)
        about_job(job.job_id, hint.id)
        if job.status in TERMINAL_STATUSES or job.status is JobStatus.STORING:
            return job, "unchanged"  # a repeated delivery: answer without asking WaveSpeed again
        return self.apply(job, self._wavespeed().get_result(hint.id), by="webhook")

    def _adopt_from_webhook(self, hint: Prediction, job_hint: str | None) -> tuple[Job, str]:
        """A task no job knows: adopt it if its signed `input.data` is the ZIP link of a job's
        uncertain (or still unrecorded) submission, as WaveSpeed's own GET confirms."""
        if hint.data_url is None:
            raise JobNotFound(hint.id)
        job = self.uncertain_owner(url_digest(hint.data_url), hint.id, job_hint)
        if job is None:
            raise JobNotFound(hint.id)
        about_job(job.job_id, hint.id)
        confirmed = self._wavespeed().get_result(hint.id)
        if confirmed.data_url is not None and url_digest(confirmed.data_url) != job.submit_url_sha256:
            logger.warning("webhook's task belongs to another upload by WaveSpeed's GET", extra={"task": hint.id})
            raise JobNotFound(hint.id)
        return self.adopt(job, confirmed, evidence="its signed webhook", by="webhook")

    def uncertain_owner(self, digest: str, task_id: str, job_hint: str | None = None) -> Job | None:
        """The job whose current submission sent exactly this ZIP link and has no task yet."""
        hinted = [self._jobs.get(job_hint)] if job_hint else []
        for job in chain(hinted, self._jobs.in_status(JobStatus.SUBMITTING)):  # the scan only if the hint misses
            if (
                job is not None
                and job.status is JobStatus.SUBMITTING
                and job.submit_url_sha256 == digest
                and task_id not in job.task_ids()
            ):
                return job
        return None

    def adopt(self, job: Job, prediction: Prediction, *, evidence: str, by: str) -> tuple[Job, str]:
        """Record a task found for a SUBMITTING job, then act on its state like any other."""
        adopted = self._jobs.transition(
            job.job_id,
            {JobStatus.SUBMITTING},
            JobStatus.SUBMITTED,
            fields={"prediction_id": prediction.id},
            note=f"task adopted: {evidence}",
            remove=("error", "error_code"),
        )
        if adopted is None:  # recorded meanwhile (the submitter's own write, or another delivery)
            current = self._jobs.get(job.job_id)
            if current is None or current.prediction_id != prediction.id:
                return current or job, "unchanged"
            adopted = current
        else:
            metrics.add_metric(name="TasksAdopted", unit=MetricUnit.Count, value=1)
            logger.info("task adopted", extra={"prediction_id": prediction.id, "evidence": evidence})
        job, outcome = self.apply(adopted, prediction, by=by)
        return job, "adopted" if outcome == "unchanged" else f"adopted, {outcome}"

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
                self._events,
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
                self._events,
                job.job_id,
                {JobStatus.STORING},
                JobStatus.FAILED,
                "STORE_FAILED",
                f"the copy of task {job.prediction_id}'s weights was restarted {job.store_requeues} times and never "
                f"finished ({why}; see StoreWeights' logs); `loradrop retry {job.job_id}` copies it again while "
                "WaveSpeed keeps the output (about 7 days)",
                remove=("store_lease_until", "store_lease_owner"),
            )
            return (ended, "failed") if ended else (job, "unchanged")
        touched = self._jobs.transition(
            job.job_id,
            {JobStatus.STORING},
            JobStatus.STORING,
            note="store re-queued by the reconciler",
            increment=("store_requeues",),
            guard=_LEASE_FREE,
            guard_values={":now": now},
        )
        if touched is None:
            return job, "unchanged"
        self._enqueue_store(touched)
        return touched, "store re-queued"

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
        assert job.prediction_id is not None  # a job reaches STORING only with its task
        body = StoreRequest(job_id=job.job_id, prediction_id=job.prediction_id).model_dump_json()
        self._sqs.send_message(QueueUrl=self._settings.store_queue_url, MessageBody=body)

    def enqueue_resubmit(self, job: Job) -> None:
        body = SubmitRequest(job_id=job.job_id, action="resubmit").model_dump_json()
        self._sqs.send_message(QueueUrl=self._settings.intake_queue_url, MessageBody=body)


class OutOfTime(Exception):
    """The invocation is nearly over: the rest waits for the next run."""


class Reconciler:
    """Asks WaveSpeed about jobs that have waited too long, so a lost webhook costs minutes, and
    settles uncertain submissions from WaveSpeed's records. One job's trouble never stops the run."""

    def __init__(
        self,
        tracker: Tracker,
        jobs: JobStore,
        events: JobEvents,
        wavespeed: Callable[[], WaveSpeed],
        settings: ReconcileSettings,
    ) -> None:
        self._tracker = tracker
        self._jobs = jobs
        self._events = events
        self._wavespeed = wavespeed
        self._settings = settings

    def run(self, now: datetime | None = None, remaining_ms: Callable[[], int] | None = None) -> dict[str, int]:
        """One pass. `remaining_ms` is the invocation's time left: the pass stops early with room
        to spare (a WaveSpeed call can take the result timeout x tries), leaving the rest for the next run."""
        now = now or datetime.now(UTC)
        reserve_ms = (self._settings.wavespeed_result_timeout * self._settings.wavespeed_result_tries + 10) * 1000
        after = timedelta(seconds=self._settings.reconcile_after_seconds)
        passes: list[tuple[JobStatus, timedelta, Callable[[Job, datetime], str]]] = [
            (JobStatus.SUBMITTING, after, self._settle),
            (JobStatus.SUBMITTED, after, self._check),
            (JobStatus.TRAINING, after, self._check),
            (JobStatus.STORING, after, self._check),
            (JobStatus.RECEIVED, 2 * after, self._requeue_received),
        ]
        summary: Counter[str] = Counter()
        oldest: datetime | None = None
        seen: set[str] = set()  # a job one pass moved is not handled again by a later pass
        try:
            for status, waited, check in passes:
                for job in self._stale(status, iso(now - waited), summary):
                    if job.job_id in seen:
                        continue
                    seen.add(job.job_id)
                    if remaining_ms is not None and remaining_ms() < reserve_ms:
                        raise OutOfTime
                    created = parse_iso(job.created_at)
                    oldest = created if oldest is None else min(oldest, created)
                    summary[self._isolated(check, job, now)] += 1
        except OutOfTime:
            summary["left for the next run"] += 1
            logger.warning("reconciler stopped early: out of time")
        age = (now - oldest).total_seconds() if oldest else 0.0
        metrics.add_metric(name="OldestWaitingJobAgeSeconds", unit=MetricUnit.Seconds, value=max(0.0, age))
        metrics.add_metric(name="UncertainSubmissions", unit=MetricUnit.Count, value=summary["ambiguous"])
        logger.info("reconciled", extra={"summary": dict(summary)})
        return dict(summary)

    def _stale(self, status: JobStatus, before: str, summary: Counter[str]) -> Iterable[Job]:
        try:
            yield from self._jobs.stale(status, before, self._settings.reconcile_batch_limit)
        except Exception:
            logger.exception("could not list stale jobs", extra={"status": status.value})
            metrics.add_metric(name="ReconcileErrors", unit=MetricUnit.Count, value=1)
            summary["error"] += 1

    def _isolated(self, check: Callable[[Job, datetime], str], job: Job, now: datetime) -> str:
        about_job(job.job_id, job.prediction_id)
        try:
            return check(job, now)
        except Exception:
            logger.exception("reconciling a job failed; it is tried again next run")
            metrics.add_metric(name="ReconcileErrors", unit=MetricUnit.Count, value=1)
            return "error"
        finally:
            forget_job()

    def _check(self, job: Job, now: datetime) -> str:
        if not job.prediction_id:
            return "unchanged"
        try:
            prediction = self._wavespeed().get_result(job.prediction_id)
        except RequestRejected as err:
            if err.status == 404:  # WaveSpeed deletes task data after about 7 days
                return self._fail(
                    job,
                    "TASK_GONE",
                    f"WaveSpeed no longer knows task {job.prediction_id}: "
                    f"`loradrop retry {job.job_id}`, or upload again",
                )
            logger.warning("WaveSpeed refused the result request", extra={"reason": err.message})
            return "unreachable"
        except WaveSpeedError as err:
            logger.warning("WaveSpeed unreachable while reconciling", extra={"reason": err.message})
            return "unreachable"
        _, outcome = self._tracker.apply(job, prediction, by="reconciler")
        return outcome

    def _requeue_received(self, job: Job, now: datetime) -> str:
        """A RECEIVED job nobody has touched for a while: its intake message was lost (or ended in the
        DLQ). Queue it again, or end it once it has waited longer than the settle deadline since it entered
        RECEIVED (a job retried days after its upload has the whole deadline again)."""
        deadline = timedelta(seconds=self._settings.settle_deadline_seconds)
        if now - parse_iso(job.entered(JobStatus.RECEIVED) or job.created_at) > deadline:
            return self._fail(
                job,
                "NOT_SUBMITTED",
                f"the upload could not be submitted to WaveSpeed within {_hours(deadline)} (rate limits or an "
                f"outage; see SubmitTraining's logs): `loradrop retry {job.job_id}` when WaveSpeed accepts tasks again",
            )
        touched = self._jobs.transition(
            job.job_id, {JobStatus.RECEIVED}, JobStatus.RECEIVED, note="submission re-queued by the reconciler"
        )
        if touched is None:
            return "unchanged"
        self._tracker.enqueue_resubmit(touched)
        return "resubmission re-queued"

    # ----- uncertain submissions -----
    def _settle(self, job: Job, now: datetime) -> str:
        started = parse_iso(job.submit_started_at or job.updated_at)
        timeout = self._settings.submit_timeout_seconds
        post_ends = started + timedelta(seconds=longest_submit_seconds(timeout) + min(5.0, timeout))
        if now < post_ends:
            return "submitting"  # the POST may still be waiting for its answer
        window = (started - CLOCK_SLACK, post_ends + CLOCK_SLACK)
        model = str((job.params or {}).get("model") or TRAINER_MODELS[0])
        try:
            tasks, complete = self._history(model, window)
        except WaveSpeedError as err:
            return self._undecided(
                job, now, started, model, window, f"its history could not be read: {err.message}", []
            )
        unknown_owner: list[str] = []
        checks = 0
        for task in tasks:
            if task.id in job.task_ids() or self._jobs.find_by_prediction(task.id) is not None:
                continue  # an earlier attempt's task, or another job's
            if checks == MAX_CANDIDATE_CHECKS:
                complete = False
                break
            checks += 1
            try:
                confirmed = self._wavespeed().get_result(task.id)
            except WaveSpeedError:
                unknown_owner.append(task.id)
                continue
            data_url = confirmed.data_url or task.data_url
            if data_url is None:
                unknown_owner.append(task.id)  # its webhook will say whose it is
            elif url_digest(data_url) == job.submit_url_sha256:
                _, outcome = self._tracker.adopt(
                    job, confirmed, evidence="found in WaveSpeed's prediction history", by="reconciler"
                )
                return outcome
        if unknown_owner or not complete:
            reason = "tasks whose upload WaveSpeed does not name" if unknown_owner else "too many tasks to check"
            return self._undecided(job, now, started, model, window, reason, unknown_owner)
        if now < started + timedelta(seconds=self._settings.uncertain_grace_seconds):
            return "waiting for history"  # WaveSpeed's history may lag behind its tasks
        return self._not_created(job, window)

    def _history(self, model: str, window: tuple[datetime, datetime]) -> tuple[list[Prediction], bool]:
        """Every task WaveSpeed created for `model` in the window, and whether all of them were read."""
        found: list[Prediction] = []
        for page in range(1, MAX_HISTORY_PAGES + 1):
            items, total = self._wavespeed().list_predictions(
                model=model, created_after=iso(window[0]), created_before=iso(window[1]), page=page
            )
            found.extend(items)
            if page * HISTORY_PAGE_SIZE >= total or not items:
                return found, len(found) >= total
        return found, False

    def _not_created(self, job: Job, window: tuple[datetime, datetime]) -> str:
        proof = (
            f"WaveSpeed's history shows no task from this upload created between {iso(window[0])} and {iso(window[1])}"
        )
        if job.lost_submissions + 1 >= MAX_LOST_SUBMISSIONS:
            return self._fail(
                job,
                "SUBMIT_FAILED",
                f"{proof}, and {MAX_LOST_SUBMISSIONS} submissions went unanswered: check WaveSpeed's status and "
                f"this account's network, then `loradrop retry {job.job_id}` (no task was billed)",
                attempts=-1,
            )
        moved = self._jobs.transition(
            job.job_id,
            {JobStatus.SUBMITTING},
            JobStatus.RECEIVED,
            note=f"{proof}: submitting again",
            attempts=-1,
            increment=("lost_submissions",),
            remove=("error", "error_code"),
        )
        if moved is None:
            return "unchanged"
        self._tracker.enqueue_resubmit(moved)
        metrics.add_metric(name="SubmissionsProvenLost", unit=MetricUnit.Count, value=1)
        return "resubmitted (nothing was created)"

    def _undecided(  # noqa: PLR0913, PLR0917 - one settling decision, all of it recorded
        self,
        job: Job,
        now: datetime,
        started: datetime,
        model: str,
        window: tuple[datetime, datetime],
        reason: str,
        candidates: list[str],
    ) -> str:
        deadline = timedelta(seconds=self._settings.settle_deadline_seconds)
        if now - started < deadline:
            return "ambiguous"
        named = f" (unclaimed tasks: {', '.join(candidates[:10])})" if candidates else ""
        return self._fail(
            job,
            "SUBMIT_UNSETTLED",
            f"loradrop could not tell whether WaveSpeed created a task for this upload: the submission at "
            f"{iso(started)} got no usable answer, and for {_hours(deadline)} WaveSpeed's records stayed ambiguous "
            f"({reason}). In your WaveSpeed dashboard, look for {model} tasks created between {iso(window[0])} and "
            f"{iso(window[1])}{named}: if one trained on s3://{job.source_bucket}/{job.source_key}, download its "
            "weights there; if there is none, upload the ZIP again.",
        )

    def _fail(self, job: Job, code: str, reason: str, *, attempts: int = 0) -> str:
        """End a job the reconciler looked at, if it is still in the state it was found in."""
        ended = end_job(
            self._jobs, self._events, job.job_id, {job.status}, JobStatus.FAILED, code, reason, attempts=attempts
        )
        return "failed" if ended else "unchanged"


def _hours(span: timedelta) -> str:
    hours = span.total_seconds() / 3600
    return f"{hours:g} hours" if hours != 1 else "1 hour"
