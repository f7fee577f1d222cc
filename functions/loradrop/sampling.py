"""A sample's WaveSpeed task → the sample's state: one code path for the webhook, the reconciler and the worker.

As for training, WaveSpeed's GET is the truth and a webhook body only says which task to ask about. A task no row
has recorded is adopted only by the sample whose uncertain POST sent exactly the input it echoes (`input_digest`:
the LoRA link, prompt and seed). Every move is conditional, so repeated or late deliveries change nothing, and a
sample's end never touches its job's state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from loradrop.budgets import BudgetChange
from loradrop.codes import ErrorCode, Outcome
from loradrop.deadline import Deadline
from loradrop.jobs import JobStore
from loradrop.log_context import about_job
from loradrop.messages import SampleRequest
from loradrop.models import ENDED_TASK_STATUSES, Task
from loradrop.ports import QueueSender, WaveSpeed
from loradrop.sample_table import same_digest
from loradrop.samples import Sample, SampleStatus, input_digest, is_sample_task, sample_key, split_key

logger = Logger(child=True)
metrics = Metrics()

S = SampleStatus
SUBMITTING_SCAN = 500  # uncertain sample POSTs looked through for a webhook whose URL lost its hint


class SampleNotFound(LookupError):
    """A sample task no sample row has (yet)."""


def task_fields(task: Task) -> dict[str, Any]:
    """What a sample records of the task it takes."""
    return {"prediction_id": task.id, "task_created_at": task.created_at, "error_code": None, "error": None}


def given_back(sample: Sample) -> BudgetChange | None:
    """What returns the sample's reservation to its month (nothing was created)."""
    if not sample.budget_month or sample.reserved_usd is None:
        return None
    return BudgetChange(sample.budget_month, committed=-sample.reserved_usd)


# What a failed sample task means for a user (the trainer's hints speak of the ZIP and of retrying the job).
SAMPLE_FAILURE_HINTS = {
    1200: "the image was flagged by content moderation: change the prompt",
    1402: "WaveSpeed could not fetch the LoRA by the link it was given: samples are unavailable for it",
}


def describe_sample_failure(task: Task) -> str:
    text = f"WaveSpeed task {task.id} {task.status}" + (f" with code {task.code}" if task.code is not None else "")
    text += f": {task.error[:500]}" if task.error else ""
    hint = SAMPLE_FAILURE_HINTS.get(task.code or 0)
    return f"{text} ({hint}; the LoRA itself is unaffected)" if hint else f"{text} (the LoRA itself is unaffected)"


class SampleTracker:
    def __init__(
        self, *, jobs: JobStore, sqs: QueueSender, wavespeed: Callable[[], WaveSpeed], store_queue_url: str
    ) -> None:
        self._jobs = jobs
        self._sqs = sqs
        self._wavespeed = wavespeed
        self._queue = store_queue_url

    def on_webhook(
        self, hint: Task, job_hint: str | None, sample_hint: int | None, deadline: Deadline | None
    ) -> tuple[Sample, Outcome] | None:
        """A verified webhook, if its task is a sample's (None: it is a training task, the Tracker's)."""
        if hint.data_url is not None:
            return None  # a trainer's input names its ZIP
        key = self._jobs.key_by_prediction(hint.id)
        if key is not None:
            sample = self._jobs.get_sample(key) if split_key(key) else None
            if sample is None:
                return None
            about_job(sample.parent_job_id, hint.id)
            if sample.status is not S.RENDERING:
                return sample, Outcome.UNCHANGED  # a repeated delivery
            return self.apply(sample, self._wavespeed().get_result(hint.id, deadline))
        if not is_sample_task(hint):
            return None
        hinted = sample_key(job_hint, sample_hint) if job_hint and sample_hint is not None else None
        return self._claim(hint, hinted, deadline)

    def _claim(self, hint: Task, hinted: str | None, deadline: Deadline | None) -> tuple[Sample, Outcome]:
        """A sample task no row has recorded: adopted by the uncertain sample whose POST sent exactly the input it
        echoes; else recorded as a stray by the sample whose earlier attempt sent it (proven lost, or never
        settled). WaveSpeed's own GET confirms it first."""
        digest = input_digest(hint.input)
        owner = self.uncertain_owner(digest, hinted) if digest else None
        if owner is None:
            return self._stray_of(hint, digest, hinted, deadline)
        about_job(owner.parent_job_id, hint.id)
        confirmed = self._wavespeed().get_result(hint.id, deadline)
        if confirmed.input is None:  # the GET may leave `input` out: the signed body names it
            confirmed = confirmed.model_copy(update={"input": hint.input})
        if input_digest(confirmed.input) != digest:
            logger.warning("webhook's sample task differs by WaveSpeed's GET", extra={"task": hint.id})
            raise SampleNotFound(hint.id)
        return self.adopt(owner, confirmed, "its signed webhook")

    def _stray_of(
        self, hint: Task, digest: str | None, hinted: str | None, deadline: Deadline | None
    ) -> tuple[Sample, Outcome]:
        hinted_sample = self._jobs.get_sample(hinted) if hinted else None
        for sample in (hinted_sample, self._jobs.sample_of_input(digest) if digest else None):
            if (
                sample is not None
                and digest is not None
                and (counted := self.earlier_attempt(sample, digest)) is not None
            ):
                about_job(sample.parent_job_id, hint.id)
                confirmed = self._wavespeed().get_result(hint.id, deadline)
                return sample, self.take_stray(sample, confirmed, "its signed webhook", counted=counted)
        raise SampleNotFound(hint.id)

    @staticmethod
    def earlier_attempt(sample: Sample, digest: str) -> bool | None:
        """Whether a task with this input is one of the sample's attempts given up on, and if so whether it still
        has to be counted: True for an attempt proven lost (given back), False for the attempt that never settled
        (counted all along); None for neither."""
        if digest in sample.earlier_digests:
            return True
        if sample.error_code == ErrorCode.SUBMIT_UNSETTLED and digest == sample.submit_digest:
            return False
        return None

    def uncertain_owner(self, digest: str, hinted: str | None) -> Sample | None:
        """The sample whose current POST sent exactly this input and has no task yet: the URL's hint first (unsigned,
        so only a lead), else the uncertain samples."""
        for sample in self._candidates(hinted):
            if sample.status is S.SUBMITTING and sample.submit_digest == digest and sample.prediction_id is None:
                return sample
        return None

    def _candidates(self, hinted: str | None) -> Iterator[Sample]:
        if hinted and (sample := self._jobs.get_sample(hinted)) is not None:
            yield sample
        for key, _ in self._jobs.stale_keys(S.SUBMITTING, "~", SUBMITTING_SCAN):
            if key != hinted and (sample := self._jobs.get_sample(key)) is not None:
                yield sample

    def adopt(self, sample: Sample, task: Task, evidence: str) -> tuple[Sample, Outcome]:
        """Record a task found for an uncertain sample (while it is on the attempt that sent the task's input)."""
        moved, done = self._jobs.move_sample(
            sample,
            {S.SUBMITTING},
            S.RENDERING,
            note=f"task adopted: {evidence}",
            sets=task_fields(task),
            removes={"error", "error_code"},
            condition=same_digest(sample.submit_digest),
        )
        if not done or moved is None:
            return moved or sample, Outcome.UNCHANGED
        metrics.add_metric(name="SampleTasksAdopted", unit=MetricUnit.Count, value=1)
        after, outcome = self.apply(moved, task)
        return after, Outcome.ADOPTED.then(outcome)

    def take_stray(self, sample: Sample, task: Task, evidence: str, *, counted: bool = True) -> Outcome:
        """A task of an attempt given up on turned up after all: it was paid for, so it is recorded and, if its
        attempt was given back (proven lost), counted again (its month holds its quote again); the StrayTasks alarm
        asks a person to look why. Its image is not copied: the sample has ended, or has a task of its own."""
        if task.id in sample.stray_tasks or task.id == sample.prediction_id:
            return Outcome.UNCHANGED
        month = sample.budget_month
        spent = BudgetChange(month, committed=sample.quote_usd) if month and sample.quote_usd is not None else None
        note = f"WaveSpeed task {task.id} of an attempt given up on turned up ({evidence}): it was paid for"
        if not self._jobs.record_stray(sample, task.id, note, spent if counted else None, counted=counted):
            return Outcome.UNCHANGED
        metrics.add_metric(name="StrayTasks", unit=MetricUnit.Count, value=1)
        logger.warning("a sample task of an attempt proven lost turned up", extra={"prediction_id": task.id})
        return Outcome.STRAY_RECORDED

    def record_task(self, sample: Sample, task: Task) -> Sample:
        """SUBMITTING → RENDERING with the task the POST answered with (refused: adopted already, say)."""
        moved, _ = self._jobs.move_sample(
            sample,
            {S.SUBMITTING},
            S.RENDERING,
            sets=task_fields(task),
            removes={"error", "error_code"},
            condition=same_digest(sample.submit_digest),
        )
        return moved or sample

    def apply(self, sample: Sample, task: Task) -> tuple[Sample, Outcome]:
        """Act on the task's authoritative state."""
        if sample.prediction_id != task.id or sample.status is not S.RENDERING:
            return sample, Outcome.UNCHANGED
        if task.status == "completed":
            if not task.outputs:
                return self.fail(
                    sample, {S.RENDERING}, ErrorCode.NO_OUTPUT, f"task {task.id} completed without an image"
                )
            moved, done = self._jobs.move_sample(sample, {S.RENDERING}, S.STORING)
            if done and moved is not None:
                self.enqueue(moved)
                return moved, Outcome.STORING
            return moved or sample, Outcome.UNCHANGED
        if task.status in ENDED_TASK_STATUSES:
            code = str(task.code) if task.code is not None else task.status.upper()
            return self.fail(sample, {S.RENDERING}, code, describe_sample_failure(task))
        return sample, Outcome.UNCHANGED

    def fail(  # noqa: PLR0913 - the sample, from where, why, and what the failure proves
        self,
        sample: Sample,
        expected: set[SampleStatus],
        code: str,
        reason: str,
        *,
        created_nothing: bool = False,
        final: bool = False,
    ) -> tuple[Sample, Outcome]:
        """End the sample without an image: ENDING, which the worker turns into FAILED when it sums the samples up
        (the reconciler queues it again if that message is lost), or FAILED at once where the worker itself ends it
        (`final`). `created_nothing`: no task exists, so the attempt and its reservation are given back."""
        moved, done = self._jobs.move_sample(
            sample,
            expected,
            S.FAILED if final else S.ENDING,
            note=reason,
            sets={"error_code": code, "error": reason},
            removes={"reserved_usd"} if created_nothing else set(),
            attempts=-1 if created_nothing and sample.status is S.SUBMITTING else 0,
            budget=given_back(sample) if created_nothing else None,
            condition=same_digest(sample.submit_digest) if sample.status is S.SUBMITTING else None,
        )
        if not done or moved is None:
            return moved or sample, Outcome.UNCHANGED
        logger.warning("sample failed", extra={"sample": sample.job_id, "error_code": code})
        metrics.add_metric(name="SamplesFailed", unit=MetricUnit.Count, value=1)
        if not final:
            self.enqueue(moved)
        return moved, Outcome.FAILED

    def enqueue(self, sample: Sample) -> None:
        """A message for the sample worker (StoreWeights): submit, copy, or sum up the job's samples."""
        body = SampleRequest(job_id=sample.parent_job_id, sample=sample.index).model_dump_json()
        self._sqs.send_message(QueueUrl=self._queue, MessageBody=body)
