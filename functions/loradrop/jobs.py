"""The jobs table as the use cases speak of it: begin a submission, record a task, take the copy lease, end a
job… Each operation is one conditional move checked against `models.ALLOWED_MOVES`, so a late or repeated
event that finds the job elsewhere changes nothing, and each answers with what happened: the moved job, or,
refused, the job as it stands (no second read).
"""

from __future__ import annotations

from collections.abc import Collection
from decimal import Decimal
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from loradrop.budgets import BudgetChange, BudgetExhausted, month_of
from loradrop.codes import ErrorCode
from loradrop.job import Job, JobParams, SettleProgress
from loradrop.job_table import JobPatch, Moved
from loradrop.models import JobStatus, Task
from loradrop.redaction import redact
from loradrop.sample_table import SampleTable
from loradrop.table_moves import lease_free, lease_owner, same_attempt, same_error

logger = Logger(child=True)
metrics = Metrics()

ACTIVE = frozenset({JobStatus.SUBMITTED, JobStatus.TRAINING})  # waiting on WaveSpeed's training
_NO_ERROR = {"error": None, "error_code": None}
_NO_LEASE = {"store_lease_until": None, "store_lease_owner": None}


def _give_back(job: Job, patch: JobPatch | None = None) -> tuple[JobPatch, BudgetChange | None]:
    """`patch`, and what gives the job's current reservation back to its month (None: it holds none)."""
    patch = patch or JobPatch()
    if not job.budget_month or job.reserved_usd is None:
        return patch, None
    patch = patch.model_copy(update={"reserved_usd": None})
    return patch, BudgetChange(job.budget_month, committed=-job.reserved_usd)


def _spent_after_all(job: Job | None) -> BudgetChange | None:
    """A task of an attempt whose reservation went back (proven lost) turned up after all: it was paid for, so its
    month holds it again (at the job's latest quote, with no limit: the money is spent)."""
    if job is None or not job.budget_month or job.quote_usd is None:
        return None
    return BudgetChange(job.budget_month, committed=job.quote_usd)


def _held_again(job: Job | None) -> dict[str, Any]:
    """What the job records when a task it had given up on becomes its task again: the month holds the quote
    again (`_spent_after_all`), so the job holds it too, and completing bills it."""
    if job is None or not job.budget_month or job.quote_usd is None:
        return {}
    return {"reserved_usd": job.quote_usd, "budget_month": job.budget_month}


def _task(task: Task) -> dict[str, Any]:
    """What a job records of the task it takes: its id, and when WaveSpeed says it was created."""
    return {"prediction_id": task.id} | ({"task_created_at": task.created_at} if task.created_at else {})


class JobStore(SampleTable):
    # --- submitting ---------------------------------------------------------------------------------------------

    def begin_submission(  # noqa: PLR0913 - what the inspection found, the attempt's link and its price
        self,
        job_id: str,
        *,
        found: dict[str, Any],
        params: dict[str, Any],
        warnings: list[str],
        link: str,
        at: str,
        quote: Decimal | None = None,
        monthly_limit: Decimal | None = None,
    ) -> Moved:
        """RECEIVED → SUBMITTING, counting the task that may exist from here on; `link` is the digest of the ZIP
        link WaveSpeed is given (its tasks are told by it), `at` when the POST begins, `quote` its price. With a
        `monthly_limit`, the quote is reserved in the month's total in the same write (BudgetExhausted when it
        has no room, and nothing is written)."""
        reserve = None
        if quote is not None and monthly_limit is not None:
            if quote > monthly_limit:  # no month has room for it
                raise BudgetExhausted(month_of(at), None, monthly_limit)
            reserve = BudgetChange(month_of(at), committed=quote, limit=monthly_limit)
        patch = JobPatch(
            **found,
            **_NO_ERROR,  # why it waited in RECEIVED, if it did
            params=JobParams.model_validate(params),
            warnings=warnings,
            submit_started_at=at,
            submit_url_sha256=link,
            quote_usd=quote,
            budget_month=reserve.month if reserve else None,
            reserved_usd=quote if reserve else None,
        )
        return self._move(job_id, {JobStatus.RECEIVED}, JobStatus.SUBMITTING, patch=patch, attempts=1, budget=reserve)

    def submission_deferred(self, job: Job, note: str) -> Moved:
        """SUBMITTING → RECEIVED: WaveSpeed certainly created nothing (a 429, no connection); the count goes back,
        and the attempt's reservation with it."""
        patch, give_back = _give_back(job)
        return self._move(
            job.job_id,
            {JobStatus.SUBMITTING},
            JobStatus.RECEIVED,
            note=note,
            attempts=-1,
            patch=patch,
            condition=same_attempt(job.submit_url_sha256),
            budget=give_back,
        )

    def waiting(self, job: Job, code: ErrorCode, reason: str) -> Moved:
        """A RECEIVED job that waits before its POST (for a price, for the balance), and why: the reconciler
        queues it again once it has been left alone a while. Noted in its history only when the reason changes,
        so a wait of many tries adds one note."""
        note = None if job.error_code == code else f"waiting: [{code}]"
        patch = JobPatch(error_code=code, error=reason)
        return self._move(job.job_id, {JobStatus.RECEIVED}, JobStatus.RECEIVED, note=note, patch=patch)

    def mark_uncertain(self, job_id: str, error: str) -> Moved:
        """The POST got no usable answer: the job stays SUBMITTING, to be settled by WaveSpeed's records."""
        patch = JobPatch(error_code=ErrorCode.SUBMIT_UNCERTAIN, error=error)
        return self._move(job_id, {JobStatus.SUBMITTING}, JobStatus.SUBMITTING, note="outcome uncertain", patch=patch)

    def save_settling(self, job: Job, progress: SettleProgress) -> Moved:
        """How far settling got, kept for the next run while the job is on the same attempt."""
        return self._move(
            job.job_id,
            {JobStatus.SUBMITTING},
            JobStatus.SUBMITTING,
            patch=JobPatch(settling=progress),
            condition=same_attempt(job.submit_url_sha256),
        )

    def submission_lost(self, job: Job, note: str) -> Moved:
        """SUBMITTING → RECEIVED: WaveSpeed's records proved the attempt created nothing; counted, and tried again
        (its reservation given back)."""
        patch, give_back = _give_back(job, JobPatch(**_NO_ERROR, settling=None))
        return self._move(
            job.job_id,
            {JobStatus.SUBMITTING},
            JobStatus.RECEIVED,
            note=note,
            patch=patch,
            attempts=-1,
            count="lost_submissions",
            condition=same_attempt(job.submit_url_sha256),
            budget=give_back,
        )

    def requeue_received(self, job_id: str, note: str) -> Moved:
        """A RECEIVED job whose intake message was lost, noted before it is queued again."""
        return self._move(job_id, {JobStatus.RECEIVED}, JobStatus.RECEIVED, note=note)

    # --- tasks --------------------------------------------------------------------------------------------------

    def record_task(  # noqa: PLR0913 - whence the task came, and what it proves
        self,
        job_id: str,
        task: Task,
        *,
        expected: JobStatus = JobStatus.SUBMITTING,
        note: str | None = None,
        attempt_link: str | None = None,
        counted: Job | None = None,
    ) -> Moved:
        """→ SUBMITTED with its task: the submitter's own, one adopted by evidence (only while the job is on the
        attempt `attempt_link`), or an earlier attempt's taken from RECEIVED (`counted`: the job as read; the task
        adds to `attempts`, and to its month's budget again)."""
        return self._move(
            job_id,
            {expected},
            JobStatus.SUBMITTED,
            note=note,
            patch=JobPatch(**_task(task), **_NO_ERROR, settling=None, **_held_again(counted)),
            attempts=1 if counted else 0,
            condition=same_attempt(attempt_link),
            budget=_spent_after_all(counted),
        )

    def start_training(self, job_id: str) -> Moved:
        return self._move(job_id, {JobStatus.SUBMITTED}, JobStatus.TRAINING)

    def start_storing(self, job_id: str) -> Moved:
        """The task completed with an output: the weights are to be copied."""
        return self._move(job_id, ACTIVE, JobStatus.STORING)

    def send_back(self, job_id: str, note: str) -> Moved:
        """The task failed for a reason worth another: RECEIVED again, without it."""
        patch = JobPatch(prediction_id=None, task_created_at=None)
        return self._move(job_id, ACTIVE, JobStatus.RECEIVED, note=note, patch=patch)

    def task_missing(self, job: Job, since: str | None) -> Moved:
        """Since when WaveSpeed answers 404 for the job's task (None: it knows it again)."""
        return self._move(job.job_id, {job.status}, job.status, patch=JobPatch(task_missing_since=since))

    def reopen(self, job: Job, to: JobStatus, note: str, *, task: Task | None = None, counted: bool = False) -> Moved:
        """FAILED → RECEIVED (a new submission) or STORING (copy the output again, or `task`'s, one that turned up
        completed; `counted`: it adds to `attempts`), only if it still failed for the same reason."""
        if to is JobStatus.RECEIVED:  # a person's retry gets the full count of lost POSTs again
            patch = JobPatch(**_NO_ERROR, prediction_id=None, task_created_at=None, lost_submissions=0)
        else:
            patch = JobPatch(
                **_NO_ERROR,
                **_NO_LEASE,
                **(_task(task) if task else {}),
                task_missing_since=None,
                **_held_again(job if counted else None),
            )
        return self._move(
            job.job_id,
            {JobStatus.FAILED},
            to,
            note=note,
            patch=patch,
            attempts=1 if counted else 0,
            condition=same_error(job.error_code),
            budget=_spent_after_all(job if counted else None),
        )

    def record_stray_task(self, job: Job, task_id: str, note: str, *, counted: bool) -> Moved:
        """Record a task of an earlier attempt on the job, whatever its state (a note in place, no move);
        `counted`: it adds to `attempts` (the tasks that may exist). Refused if it was recorded already or the
        job moved meanwhile."""
        now = self.now()
        values: dict[str, Any] = {
            ":status": job.status.value,
            ":task": [task_id],
            ":task_id": task_id,
            ":empty": [],
            ":entry": [{"status": job.status.value, "at": now, "note": redact(note), "prediction_id": task_id}],
            ":now": now,
            ":zero": 0,
            ":counted": 1 if counted else 0,
        }
        return self.update(
            job.job_id,
            "SET stray_tasks = list_append(if_not_exists(stray_tasks, :empty), :task), "
            "history = list_append(if_not_exists(history, :empty), :entry), updated_at = :now, "
            "attempts = if_not_exists(attempts, :zero) + :counted",
            "#status = :status"
            " AND (attribute_not_exists(stray_tasks) OR NOT contains(stray_tasks, :task_id))"
            " AND (attribute_not_exists(prediction_id) OR prediction_id <> :task_id)",
            values,
            {"#status": "status"},
            _spent_after_all(job if counted else None),
        )

    # --- storing ------------------------------------------------------------------------------------------------

    def take_lease(self, job_id: str, owner: str, until: str) -> Moved:
        """The copy lease for `owner` until `until`, if no other copy holds it."""
        return self._move(
            job_id,
            {JobStatus.STORING},
            JobStatus.STORING,
            patch=JobPatch(store_lease_until=until, store_lease_owner=owner),
            condition=lease_free(self.now()) | lease_owner(owner),
        )

    def release_lease(self, job: Job, note: str | None = None) -> Moved:
        """Drop the lease `job` holds, so the next delivery may copy at once."""
        return self._move(
            job.job_id,
            {JobStatus.STORING},
            JobStatus.STORING,
            note=note,
            patch=JobPatch(**_NO_LEASE),
            condition=lease_owner(job.store_lease_owner),
        )

    def requeue_store(self, job_id: str, note: str) -> Moved:
        """Counted, before the store message is sent again; refused while a copy holds the lease."""
        return self._move(
            job_id,
            {JobStatus.STORING},
            JobStatus.STORING,
            note=note,
            count="store_requeues",
            condition=lease_free(self.now()),
        )

    def complete(self, job: Job, weights: dict[str, Any], warnings: list[str] | None = None) -> Moved:
        """STORING → COMPLETED with where the weights are (`weights_uri`, `_size`, `_sha256`, `model_card_uri`);
        a reserved quote counts as billed in its month."""
        patch = JobPatch.model_validate(weights | _NO_ERROR | _NO_LEASE | ({"warnings": warnings} if warnings else {}))
        bill = None
        if job.budget_month and job.reserved_usd is not None:
            bill = BudgetChange(job.budget_month, billed=job.reserved_usd)
        return self._move(job.job_id, {JobStatus.STORING}, JobStatus.COMPLETED, patch=patch, budget=bill)

    # --- ending -------------------------------------------------------------------------------------------------

    def fail_submission(self, job: Job, code: str, reason: str, *, created_nothing: bool = False) -> Moved:
        """SUBMITTING → FAILED, only while the job is on the attempt `job` is. `created_nothing`: WaveSpeed proved
        the attempt made no task (its refusal, its history), so it is not counted and its reservation goes back."""
        return self.end(
            job.job_id,
            {JobStatus.SUBMITTING},
            JobStatus.FAILED,
            code,
            reason,
            attempts=-1 if created_nothing else 0,
            attempt_link=job.submit_url_sha256,
            give_back=job if created_nothing else None,
        )

    def end(  # noqa: PLR0913 - a job ends from its states, with a code, a reason and what is worth keeping
        self,
        job_id: str,
        expected: Collection[JobStatus],
        status: JobStatus,
        code: str,
        reason: str,
        *,
        attempts: int = 0,
        found: dict[str, Any] | None = None,
        attempt_link: str | None = None,
        unless_copying: bool = False,
        give_back: Job | None = None,
    ) -> Moved:
        """→ FAILED or REJECTED with a reason a user can act on (and `found`, what an inspection found); only while
        the job is on the attempt `attempt_link` if one is given, and, `unless_copying`, while no copy holds its
        lease. Logged and counted (`JobsFailed`, `JobsRejected`); its event follows from the table's change
        stream (`loradrop.events`), not from a second call here that a crash could skip. `give_back`: the job as
        its attempt reserved a quote, WaveSpeed having proven it created nothing (`attempts` -1)."""
        reason = redact(reason)  # it may quote WaveSpeed, which may quote our presigned link
        condition = same_attempt(attempt_link)
        if unless_copying:
            lease = lease_free(self.now())
            condition = lease if condition is None else condition & lease
        # An ended job has no copy running, nothing to settle and no task to look for.
        patch = JobPatch(
            **(found or {}), error_code=code, error=reason, **_NO_LEASE, settling=None, task_missing_since=None
        )
        patch, release = _give_back(give_back, patch) if give_back else (patch, None)
        ended = self._move(
            job_id, expected, status, patch=patch, attempts=attempts, condition=condition, budget=release
        )
        if ended.done:
            logger.info("job ended", extra={"status": status.value, "error_code": code, "reason": reason})
            metrics.add_metric(name=f"Jobs{status.value.title()}", unit=MetricUnit.Count, value=1)
        return ended
