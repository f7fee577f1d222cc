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

from collections.abc import Callable
from datetime import timedelta
from itertools import chain

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from loradrop.codes import ErrorCode, Outcome
from loradrop.deadline import Deadline
from loradrop.job import COPY_FAILED_NOTE, Job, job_id_for, url_digest, utc_now
from loradrop.jobs import ACTIVE, JobStore, Moved
from loradrop.log_context import about_job
from loradrop.messages import StoreRequest, SubmitRequest
from loradrop.models import (
    ENDED_TASK_STATUSES,
    KNOWN_TASK_STATUSES,
    TERMINAL_STATUSES,
    JobStatus,
    Task,
    describe_failure,
    is_retryable,
    retry_kind,
)
from loradrop.ports import QueueSender, WaveSpeed
from loradrop.sampling import SampleTracker
from loradrop.settings import TrackingSettings
from loradrop.settling import (
    link_object,
    names_object,
)

logger = Logger(child=True)
metrics = Metrics()

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
        # the sample images' tasks (`loradrop.samples`) arrive by the same webhook and the same reconciler
        self.samples = SampleTracker(jobs=jobs, sqs=sqs, wavespeed=wavespeed, store_queue_url=settings.store_queue_url)

    def on_webhook(
        self, hint: Task, job_hint: str | None = None, deadline: Deadline | None = None
    ) -> tuple[Job, Outcome]:
        """A verified webhook. `hint` is its signed body; `job_hint` the unsigned job id from the URL."""
        job = self._jobs.find_by_prediction(hint.id)
        if job is None:
            return self._claim_from_webhook(hint, job_hint, deadline)
        about_job(job.job_id, hint.id)
        if (
            job.status is JobStatus.FAILED and job.error_code == ErrorCode.TASK_GONE
        ):  # WaveSpeed's 404s were not the end
            return job, self.revive(job, self._wavespeed().get_result(hint.id, deadline), "its signed webhook") or (
                Outcome.UNCHANGED
            )
        if job.status in TERMINAL_STATUSES or job.status is JobStatus.STORING:
            return job, Outcome.UNCHANGED  # a repeated delivery: answer without asking WaveSpeed again
        return self.apply(job, self._wavespeed().get_result(hint.id, deadline), by="webhook")

    def _claim_from_webhook(self, hint: Task, job_hint: str | None, deadline: Deadline | None) -> tuple[Job, Outcome]:
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

    def adopt(self, job: Job, task: Task, evidence: str, *, by: str = "reconciler") -> tuple[Job, Outcome]:
        """Record a task found for a SUBMITTING job — only while the job is still on the attempt whose link
        the task names — then act on its state like any other."""
        adopted = self._jobs.record_task(
            job.job_id, task, note=f"task adopted: {evidence}", attempt_link=job.submit_url_sha256
        )
        current = adopted.job
        if not adopted.done:  # the job moved on while WaveSpeed was asked
            if current is None or (current.prediction_id != task.id and task.id in current.task_ids()):
                return current or job, Outcome.UNCHANGED
            if current.prediction_id != task.id:
                # Its attempt was settled meanwhile (proven lost, or a new one began): the task is an earlier
                # attempt's now, and is never forgotten.
                return current, self.take_stray(current, task, evidence)
            # recorded meanwhile (the submitter's own write, or another delivery)
        else:
            metrics.add_metric(name="TasksAdopted", unit=MetricUnit.Count, value=1)
            logger.info("task adopted", extra={"prediction_id": task.id, "evidence": evidence})
        assert current is not None  # a move that was done returns the job
        job, outcome = self.apply(current, task, by=by)
        return job, Outcome.ADOPTED.then(outcome)

    def take_stray(self, job: Job, task: Task, evidence: str) -> Outcome:
        """A task of one of the job's earlier attempts (WaveSpeed's word names its link). With no POST in
        flight (RECEIVED) and the task not ended, it becomes the job's task, saving a new paid one; otherwise
        it is recorded on the job and counted, and the StrayTasks alarm asks a person to look. Never dropped:
        if the job keeps moving under it, this raises (a webhook is then answered 5xx and comes again)."""
        about_job(job.job_id, task.id)
        for _ in range(STRAY_TRIES):
            if task.id in job.task_ids():  # recorded already (counted then): stored if it completed since
                revived = task.id in job.stray_tasks and self.revive(job, task, evidence, counted=False)
                return revived or Outcome.UNCHANGED
            outcome, current = self._take_stray_once(job, task, evidence)
            if outcome is not None:
                return outcome
            job = current or job  # it moved meanwhile: look again
        raise RuntimeError(f"task {task.id} could not be recorded on job {job.job_id}: the job kept moving")

    def _take_stray_once(self, job: Job, task: Task, evidence: str) -> tuple[Outcome | None, Job | None]:
        """What became of the task, or None and the job as it stands if the job moved meanwhile."""
        # An attempt that ended SUBMIT_UNSETTLED still counts its task as one that may exist.
        link = url_digest(task.data_url or "")
        counted = not (job.error_code == ErrorCode.SUBMIT_UNSETTLED and link == job.submit_url_sha256)
        if job.status is JobStatus.FAILED and (revived := self.revive(job, task, evidence, counted=counted)):
            return revived, job
        if job.status is JobStatus.RECEIVED and task.status not in ENDED_TASK_STATUSES:
            taken = self._jobs.record_task(
                job.job_id,
                task,
                expected=JobStatus.RECEIVED,
                note=f"a task of an earlier attempt turned up ({evidence}) and is taken instead of a new one",
                counted=job,
            )
            if not taken.done or taken.job is None:
                return None, taken.job
            _turned_up("an earlier attempt's task was taken instead of a new one", task)
            _, outcome = self.apply(taken.job, task, by="reconciler")
            return Outcome.EARLIER_TASK_TAKEN.then(outcome), taken.job
        recorded = self._jobs.record_stray_task(
            job,
            task.id,
            f"WaveSpeed task {task.id} of an earlier attempt turned up ({evidence}; {task.status}): it was paid "
            "for; its output stays at WaveSpeed for about 7 days",
            counted=counted,
        )
        if not recorded.done:
            return None, recorded.job
        _turned_up("a task of an earlier attempt was recorded", task)
        return Outcome.STRAY_RECORDED, recorded.job

    def revive(self, job: Job, task: Task, evidence: str, *, counted: bool = False) -> Outcome | None:
        """A FAILED job none of whose weights were stored, and a task of it that turns up completed (a late
        task, or one WaveSpeed's 404s wrongly gave up): its weights are the user's paid output, so they are
        stored. `counted`: the task adds to `attempts`. None when the job or the task is not such a one."""
        if job.status is not JobStatus.FAILED or retry_kind(job.error_code) == "store":
            return None
        if task.status != "completed" or task.weights_url is None:
            return None
        revived = self._jobs.reopen(
            job,
            JobStatus.STORING,
            f"task {task.id} turned up completed ({evidence}) after the job failed [{job.error_code}]: "
            "its weights are stored",
            task=task,
            counted=counted,
        )
        if not revived.done or revived.job is None:
            return None
        _turned_up("a failed job's task turned up completed; storing it", task)
        self._enqueue_store(revived.job)
        return Outcome.FAILED_JOB_REVIVED

    def apply(self, job: Job, task: Task, *, by: str) -> tuple[Job, Outcome]:
        """Act on a task's authoritative state; return the job and what happened, in a word or two."""
        if job.prediction_id != task.id or job.status in TERMINAL_STATUSES:
            return job, Outcome.UNCHANGED
        status = task.status
        if status == "processing" and job.status is JobStatus.SUBMITTED:
            return _said(self._jobs.start_training(job.job_id), job, Outcome.TRAINING)
        if status == "completed":
            return self._completed(job, task, by)
        if status in ENDED_TASK_STATUSES and job.status in ACTIVE:
            if is_retryable(task) and job.attempts < self._settings.max_attempts:
                return self._resubmit(job, task)
            code = str(task.code) if task.code is not None else status.upper()
            ended = self._jobs.end(job.job_id, ACTIVE, JobStatus.FAILED, code, describe_failure(task))
            return _said(ended, job, Outcome.FAILED)
        if status not in KNOWN_TASK_STATUSES:
            logger.warning("unknown WaveSpeed task status", extra={"task_status": status})
        return job, Outcome.UNCHANGED

    def _completed(self, job: Job, task: Task, by: str) -> tuple[Job, Outcome]:
        if job.status in ACTIVE:
            if task.weights_url is None:
                ended = self._jobs.end(
                    job.job_id,
                    ACTIVE,
                    JobStatus.FAILED,
                    ErrorCode.NO_OUTPUT,
                    f"WaveSpeed task {task.id} completed without any output file",
                )
                return _said(ended, job, Outcome.FAILED)
            moved = self._jobs.start_storing(job.job_id)
            if moved.done and moved.job is not None:
                self._enqueue_store(moved.job)
            return _said(moved, job, Outcome.STORING)
        if job.status is JobStatus.STORING and by == "reconciler":
            return self._restart_store(job)
        return job, Outcome.UNCHANGED

    def _restart_store(self, job: Job) -> tuple[Job, Outcome]:
        """The store message was lost, or its copy died: queue it again — unless a copy holds the
        lease (it is still running), or copies were restarted too often to hope."""
        now = utc_now()
        if job.store_lease_until and job.store_lease_until > now:
            return job, Outcome.COPY_RUNNING
        if job.store_requeues >= self._settings.store_max_requeues:
            last = job.last_note(COPY_FAILED_NOTE)
            why = f"the last try said: {last.removeprefix(COPY_FAILED_NOTE + ': ')}" if last else "a timeout?"
            ended = self._jobs.end(
                job.job_id,
                {JobStatus.STORING},
                JobStatus.FAILED,
                ErrorCode.STORE_FAILED,
                f"the copy of task {job.prediction_id}'s weights was restarted {job.store_requeues} times and never "
                f"finished ({why}; see StoreWeights' logs); `loradrop retry {job.job_id}` copies it again while "
                "WaveSpeed keeps the output (about 7 days)",
                unless_copying=True,
            )
            return _said(ended, job, Outcome.FAILED)
        touched = self._jobs.requeue_store(job.job_id, "store re-queued by the reconciler")
        if touched.done and touched.job is not None:
            self._enqueue_store(touched.job)
        return _said(touched, job, Outcome.STORE_REQUEUED)

    def _resubmit(self, job: Job, task: Task) -> tuple[Job, Outcome]:
        attempt = f"attempt {job.attempts + 1} of {self._settings.max_attempts}"
        moved = self._jobs.send_back(job.job_id, f"{describe_failure(task)}; resubmitting ({attempt})")
        if moved.done and moved.job is not None:
            self.enqueue_resubmit(moved.job)
            metrics.add_metric(name="TasksResubmitted", unit=MetricUnit.Count, value=1)
        return _said(moved, job, Outcome.RESUBMITTED)

    def _enqueue_store(self, job: Job) -> None:
        assert job.prediction_id is not None  # a job reaches STORING only with its task
        body = StoreRequest(job_id=job.job_id, prediction_id=job.prediction_id).model_dump_json()
        self._sqs.send_message(QueueUrl=self._settings.store_queue_url, MessageBody=body)

    def enqueue_resubmit(self, job: Job) -> None:
        body = SubmitRequest(job_id=job.job_id, action="resubmit").model_dump_json()
        self._sqs.send_message(QueueUrl=self._settings.intake_queue_url, MessageBody=body)


def _said(moved: Moved, job: Job, outcome: Outcome) -> tuple[Job, Outcome]:
    """`outcome` and the moved job if the move was done; else the job as it was looked at, unchanged."""
    return (moved.job, outcome) if moved.done and moved.job is not None else (job, Outcome.UNCHANGED)


def _turned_up(what: str, task: Task) -> None:
    """A task loradrop had given up on turned up (a settle that concluded "absent", a 404 that said "gone", a
    race): taken, stored or recorded, it is counted, and the StrayTasks alarm asks a person to look why."""
    metrics.add_metric(name="StrayTasks", unit=MetricUnit.Count, value=1)
    logger.warning(what, extra={"prediction_id": task.id})


def _job_id_from_link(url: str) -> str | None:
    """The job a presigned ZIP link was made for, when it names an object version (a versioned uploads bucket,
    as the template's is: the version is the job's identity)."""
    found = link_object(url)
    return job_id_for(found[0], found[1], found[2], None) if found and found[2] else None
