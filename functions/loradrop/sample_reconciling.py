"""The reconciler's part for samples (`loradrop.samples`): a lost webhook, a lost message or an uncertain POST costs
minutes, never an image nor a second paid task.

An uncertain sample POST is settled as a training one is (`settling`): its task is looked for in WaveSpeed's
history of the inference model around the POST, told by the input it echoes (`input_digest`); absence is concluded
only from a complete history, read twice at least a few minutes apart, past the grace, with every task's input
known; anything else waits, and after the settle deadline the sample ends SUBMIT_UNSETTLED with what to look for.
A history so busy that its tasks cannot all be checked in one run stays "not known" (no cursor across runs, as
training keeps): never "absent".
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime, timedelta

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from loradrop.codes import ErrorCode, Outcome
from loradrop.deadline import Deadline
from loradrop.job import hours, iso, parse_iso
from loradrop.jobs import JobStore
from loradrop.models import JobStatus, Task, retry_kind
from loradrop.ports import WaveSpeed
from loradrop.sample_table import same_digest
from loradrop.samples import SAMPLE_MODEL, Sample, SampleStatus, input_digest
from loradrop.sampling import SampleTracker, given_back
from loradrop.settings import ReconcileSettings
from loradrop.settling import CLOCK_SKEW, read_history
from loradrop.wavespeed import MIN_READ_SECONDS, NotFound, WaveSpeedError, longest_submit_seconds

logger = Logger(child=True)
metrics = Metrics()

S = SampleStatus
MAX_LOST_SAMPLE_POSTS = 2  # POSTs of one sample proven to have created nothing before it gives up

Check = Callable[[Sample, datetime, Deadline], Outcome]


class SampleReconciler:
    def __init__(
        self, tracker: SampleTracker, jobs: JobStore, wavespeed: Callable[[], WaveSpeed], settings: ReconcileSettings
    ) -> None:
        self._tracker = tracker
        self._jobs = jobs
        self._wavespeed = wavespeed
        self._settings = settings

    def passes(self, after: timedelta) -> list[tuple[SampleStatus, timedelta, Check]]:
        """Each sample state the reconciler looks at, how long a sample waits in it first, and the check."""
        return [
            (S.SUBMITTING, after, self.settle),
            (S.RENDERING, after, self.check),
            (S.STORING, after, self.requeue_copy),
            (S.ENDING, after, self.requeue_ending),
            (S.PLANNED, after, self.requeue_planned),
        ]

    def requeue_planned(self, sample: Sample, now: datetime, deadline: Deadline) -> Outcome:
        """A planned sample whose message was lost, or left here to wait (a 429, no price yet, its job being stored
        or failed in a way `loradrop retry` may mend): queued again, until the settle deadline."""
        job = self._jobs.get(sample.parent_job_id)
        limit = timedelta(seconds=self._settings.settle_deadline_seconds)
        late = now - parse_iso(sample.created_at) > limit
        trained = job is not None and job.status is JobStatus.COMPLETED
        if (
            job is None
            or job.status is JobStatus.REJECTED
            or (job.status is JobStatus.FAILED and not retry_kind(job.error_code))
            or (late and not trained)
        ):
            why = "the job's training did not complete"
            return self._tracker.fail(sample, {S.PLANNED}, ErrorCode.NOT_TRAINED, why)[1]
        if late:
            why = f"the sample could not be submitted within {hours(limit)} (rate limits, an outage, or no price)"
            return self._tracker.fail(sample, {S.PLANNED}, ErrorCode.NOT_SUBMITTED, why)[1]
        if not trained:
            return Outcome.UNCHANGED  # its weights are being stored, or a retry may still complete it
        return self._requeue(sample, "sample re-queued by the reconciler")

    def requeue_ending(self, sample: Sample, now: datetime, deadline: Deadline) -> Outcome:
        """A sample that ended without an image and whose message to the worker (which records it and sums the samples
        up) was lost."""
        return self._requeue(sample, "re-queued by the reconciler")

    def _requeue(self, sample: Sample, note: str, *, count: str | None = None) -> Outcome:
        """Note the sample where it is (`count`: a counter to add one to) and send its worker a message again."""
        moved, done = self._jobs.move_sample(sample, {sample.status}, sample.status, note=note, count=count)
        if not done or moved is None:
            return Outcome.UNCHANGED
        self._tracker.enqueue(moved)
        return Outcome.SAMPLE_REQUEUED

    def check(self, sample: Sample, now: datetime, deadline: Deadline) -> Outcome:
        """A rendering sample whose webhook did not come: WaveSpeed's word on its task."""
        assert sample.prediction_id is not None  # a sample renders only with its task
        try:
            task = self._wavespeed().get_result(sample.prediction_id, deadline)
        except NotFound:
            return self._not_found(sample, now)
        except WaveSpeedError as err:
            logger.warning("WaveSpeed unreachable while reconciling a sample", extra={"reason": err.message})
            return Outcome.UNREACHABLE
        if sample.absent_since is not None:  # WaveSpeed knows it again: an earlier 404 was not the end
            sample = self._jobs.move_sample(sample, {S.RENDERING}, S.RENDERING, removes={"absent_since"})[0] or sample
        return self._tracker.apply(sample, task)[1]

    def _not_found(self, sample: Sample, now: datetime) -> Outcome:
        """WaveSpeed's 404 for the task: the sample ends only when it holds on reads minutes apart."""
        if sample.absent_since is None:
            self._jobs.move_sample(sample, {S.RENDERING}, S.RENDERING, sets={"absent_since": iso(now)})
            return Outcome.TASK_NOT_FOUND
        if now - parse_iso(sample.absent_since) < timedelta(seconds=self._settings.absence_confirm_seconds):
            return Outcome.TASK_NOT_FOUND
        why = f"WaveSpeed no longer knows task {sample.prediction_id} (404 since {sample.absent_since})"
        return self._tracker.fail(sample, {S.RENDERING}, ErrorCode.TASK_GONE, why)[1]

    def requeue_copy(self, sample: Sample, now: datetime, deadline: Deadline) -> Outcome:
        """A copy whose message was lost or whose worker died: queued again a few times, then given up."""
        if sample.store_requeues >= self._settings.store_max_requeues:
            why = f"the image copy was restarted {sample.store_requeues} times and never finished"
            return self._tracker.fail(sample, {S.STORING}, ErrorCode.STORE_FAILED, why)[1]
        return self._requeue(sample, "copy re-queued by the reconciler", count="store_requeues")

    # --- an uncertain POST ---------------------------------------------------------------------------------------

    def _window(self, sample: Sample) -> tuple[datetime, datetime, tuple[datetime, datetime]]:
        """When the sample's POST began, when its last possible answer came, and the window its task lies in."""
        started = parse_iso(sample.submit_started_at or sample.created_at)  # (never updated_at: touches move it)
        timeout = self._settings.submit_timeout_seconds
        post_ends = started + timedelta(seconds=longest_submit_seconds(timeout) + min(5.0, timeout))
        return started, post_ends, (started - CLOCK_SKEW, post_ends + CLOCK_SKEW)

    def settle(self, sample: Sample, now: datetime, deadline: Deadline) -> Outcome:  # noqa: PLR0911 - one per finding
        started, post_ends, window = self._window(sample)
        if now < post_ends:
            return Outcome.SUBMITTING  # its POST may still be waiting for an answer
        if not sample.submit_digest:
            return self._undecided(sample, now, "its input was not recorded")
        listing = read_history(self._wavespeed(), SAMPLE_MODEL, window, deadline)
        unknown = 0
        for task in sorted(listing.tasks, key=lambda t: _distance(t, started)):
            digest, confirmed = self._input_of(task, sample.submit_digest, deadline)
            if digest == sample.submit_digest and confirmed is not None:
                return self._tracker.adopt(sample, confirmed, "found in WaveSpeed's prediction history")[1]
            if digest is not None and digest in sample.earlier_digests:
                self._stray(sample, task, deadline)
            unknown += digest is None
        if listing.cut or not listing.complete:
            return self._undecided(sample, now, listing.why_incomplete or "history incomplete")
        if unknown:
            return self._undecided(sample, now, f"{unknown} tasks whose input could not be read")
        if now < started + timedelta(seconds=self._settings.uncertain_grace_seconds):
            return self._undecided(sample, now, "within the grace", outcome=Outcome.WAITING_FOR_HISTORY)
        everything = hashlib.sha256("\n".join(sorted(t.id for t in listing.tasks)).encode()).hexdigest()
        if sample.absent_since is None or sample.absent_digest != everything:
            sets = {"absent_since": iso(now), "absent_digest": everything}
            self._jobs.move_sample(
                sample, {S.SUBMITTING}, S.SUBMITTING, sets=sets, condition=same_digest(sample.submit_digest)
            )
            return Outcome.ABSENT_ONCE
        if now - parse_iso(sample.absent_since) < timedelta(seconds=self._settings.absence_confirm_seconds):
            return Outcome.ABSENT_ONCE
        return self._not_created(sample, window)

    def _stray(self, sample: Sample, task: Task, deadline: Deadline) -> None:
        """A task of an attempt of the sample's proven lost, in the history: confirmed by WaveSpeed's GET, recorded."""
        try:
            confirmed = self._wavespeed().get_result(task.id, deadline)
        except WaveSpeedError:
            return  # the next run looks again
        if input_digest(confirmed.input or task.input) in sample.earlier_digests:
            self._tracker.take_stray(sample, confirmed, "found in WaveSpeed's prediction history")

    def _input_of(self, task: Task, own: str, deadline: Deadline) -> tuple[str | None, Task | None]:
        """The task's input digest (None: not known) and, when it is `own`, the task as WaveSpeed's GET confirms it
        (a match is always confirmed). A listed input that is not `own`, or a task another row has, needs no GET."""
        listed = input_digest(task.input)
        if listed is not None and listed != own:
            return listed, None
        if listed is None and self._jobs.key_by_prediction(task.id) is not None:
            return "", None  # another job's or sample's task
        if deadline.remaining() < MIN_READ_SECONDS:
            return None, None
        try:
            confirmed = self._wavespeed().get_result(task.id, deadline)
        except WaveSpeedError:  # NotFound included: whose it was is lost
            return None, None
        if confirmed.input is None and task.input is not None:
            confirmed = confirmed.model_copy(update={"input": task.input})
        return input_digest(confirmed.input), confirmed

    def _not_created(self, sample: Sample, window: tuple[datetime, datetime]) -> Outcome:
        proof = (
            f"WaveSpeed's complete history, read twice, shows no task of this sample created between "
            f"{iso(window[0])} and {iso(window[1])}"
        )
        assert sample.submit_digest is not None  # settled only with its input recorded
        self._jobs.remember_input(sample.submit_digest, sample.job_id)  # should its task turn up after all
        if sample.lost_submissions + 1 >= MAX_LOST_SAMPLE_POSTS:
            why = f"{proof}, and {MAX_LOST_SAMPLE_POSTS} POSTs went unanswered (nothing was billed)"
            return self._tracker.fail(sample, {S.SUBMITTING}, ErrorCode.SUBMIT_FAILED, why, created_nothing=True)[1]
        clear: set[str] = {"submit_digest", "reserved_usd", "absent_since", "absent_digest", "error", "error_code"}
        moved, done = self._jobs.move_sample(
            sample,
            {S.SUBMITTING},
            S.PLANNED,
            note=f"{proof}: submitting again",
            sets={"earlier_digests": [*sample.earlier_digests, sample.submit_digest]},
            removes=clear,
            attempts=-1,
            count="lost_submissions",
            budget=given_back(sample),
            condition=same_digest(sample.submit_digest),
        )
        if not done or moved is None:
            return Outcome.UNCHANGED
        metrics.add_metric(name="SampleSubmissionsProvenLost", unit=MetricUnit.Count, value=1)
        self._tracker.enqueue(moved)
        return Outcome.PROVEN_LOST

    def _undecided(
        self, sample: Sample, now: datetime, reason: str, *, outcome: Outcome = Outcome.AMBIGUOUS
    ) -> Outcome:
        """Not settled this run: the sample waits, until the settle deadline, when it ends with what to look for."""
        started, _, window = self._window(sample)
        limit = timedelta(seconds=self._settings.settle_deadline_seconds)
        if now - started < limit:
            return outcome
        why = (
            f"loradrop could not tell whether WaveSpeed created this sample's task: for {hours(limit)} its records "
            f"stayed ambiguous ({reason}). In your WaveSpeed dashboard, look for {SAMPLE_MODEL} tasks created between "
            f"{iso(window[0])} and {iso(window[1])} with seed {sample.seed}; the LoRA itself is unaffected"
        )
        if sample.submit_digest:  # its task, should it turn up, is recorded (counted already)
            self._jobs.remember_input(sample.submit_digest, sample.job_id)
        return self._tracker.fail(sample, {S.SUBMITTING}, ErrorCode.SUBMIT_UNSETTLED, why)[1]


def _distance(task: Task, started: datetime) -> tuple[float, str]:
    """Nearest the POST's start first (a task is created moments after its POST); unreadable times last."""
    try:
        return abs((parse_iso(task.created_at or "") - started).total_seconds()), task.id
    except (ValueError, TypeError):
        return float("inf"), task.id
