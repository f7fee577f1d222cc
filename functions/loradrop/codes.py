"""The words loradrop records and answers with: a job's error codes and what a use case did.

Both are stored or shown as their text (job items, events, the webhook's answer, the reconciler's summary),
so a member's value never changes. A job's `error_code` may also be WaveSpeed's own (a failed task's code,
or its status in capitals): those stay plain text.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """Why loradrop ended a job (each with a reason a person can act on)."""

    INVALID_UPLOAD = "INVALID_UPLOAD"  # the ZIP could not be read, or was deleted or overwritten
    INVALID_DATASET = "INVALID_DATASET"  # not fit to train on (DatasetPolicy strict)
    INVALID_PARAMETERS = "INVALID_PARAMETERS"  # the upload's training parameters
    SUBMIT_UNCERTAIN = "SUBMIT_UNCERTAIN"  # not an end: a POST without a usable answer, being settled
    SUBMIT_FAILED = "SUBMIT_FAILED"  # submissions proven lost too often
    SUBMIT_UNSETTLED = "SUBMIT_UNSETTLED"  # WaveSpeed's records stayed ambiguous until the settle deadline
    NOT_SUBMITTED = "NOT_SUBMITTED"  # rate limits or an outage kept the upload from WaveSpeed too long
    QUOTE_UNAVAILABLE = "QUOTE_UNAVAILABLE"  # a budget is set and WaveSpeed would not price the task in time
    OVER_BUDGET = "OVER_BUDGET"  # quoted above the stack's MaxJobUsd
    BUDGET_EXHAUSTED = "BUDGET_EXHAUSTED"  # the month's MonthlyBudgetUsd has no room for the quote
    INSUFFICIENT_BALANCE = "INSUFFICIENT_BALANCE"  # WaveSpeed's balance stayed below the quote until the deadline
    TASK_GONE = "TASK_GONE"  # WaveSpeed no longer knows the job's task
    NO_OUTPUT = "NO_OUTPUT"  # the task completed without a file to store
    OUTPUT_REFUSED = "OUTPUT_REFUSED"  # the output's host is not one weights may come from
    OUTPUT_TOO_LARGE = "OUTPUT_TOO_LARGE"
    STORE_TIMEOUT = "STORE_TIMEOUT"  # the copy could not finish within StoreWeights' timeout
    STORE_FAILED = "STORE_FAILED"  # the copy failed on every try
    # (samples only: `loradrop.samples`)
    NOT_TRAINED = "NOT_TRAINED"  # the job's training did not complete: there is no LoRA to render with
    OUTPUT_GONE = "OUTPUT_GONE"  # WaveSpeed no longer serves the task's output


class Outcome(StrEnum):
    """What handling an event or checking a job did, in a word or two (the reconciler counts them)."""

    UNCHANGED = "unchanged"
    UNKNOWN_JOB = "unknown job"
    ERROR = "error"
    # tracking a task
    TRAINING = "training"
    STORING = "storing"
    COMPLETED = "completed"
    FAILED = "failed"
    RESUBMITTED = "resubmitted"
    COPY_RUNNING = "copy running"
    STORE_REQUEUED = "store re-queued"
    RESUBMISSION_REQUEUED = "resubmission re-queued"
    UNREACHABLE = "unreachable"
    TASK_NOT_FOUND = "task not found, confirming"
    # tasks found by evidence
    ADOPTED = "adopted"
    ADOPTED_TRAINING = "adopted, training"
    ADOPTED_STORING = "adopted, storing"
    ADOPTED_FAILED = "adopted, failed"
    ADOPTED_RESUBMITTED = "adopted, resubmitted"
    ADOPTED_COPY_RUNNING = "adopted, copy running"
    ADOPTED_STORE_REQUEUED = "adopted, store re-queued"
    EARLIER_TASK_TAKEN = "earlier task taken"
    EARLIER_TASK_TAKEN_TRAINING = "earlier task taken, training"
    EARLIER_TASK_TAKEN_STORING = "earlier task taken, storing"
    EARLIER_TASK_TAKEN_FAILED = "earlier task taken, failed"
    EARLIER_TASK_TAKEN_RESUBMITTED = "earlier task taken, resubmitted"
    EARLIER_TASK_TAKEN_COPY_RUNNING = "earlier task taken, copy running"
    EARLIER_TASK_TAKEN_STORE_REQUEUED = "earlier task taken, store re-queued"
    STRAY_RECORDED = "stray task recorded"
    FAILED_JOB_REVIVED = "failed job revived, storing"
    # settling an uncertain submission
    SUBMITTING = "submitting"
    AMBIGUOUS = "ambiguous"
    CHECKING = "checking"
    WAITING_FOR_HISTORY = "waiting for history"
    ABSENT_ONCE = "absent once, confirming"
    PROVEN_LOST = "resubmitted (nothing was created)"
    # samples
    SAMPLE_REQUEUED = "sample re-queued"
    # the reconciler's run
    LEFT_FOR_NEXT_RUN = "left for the next run"

    def then(self, after: Outcome) -> Outcome:
        """This, followed by what acting on the task did (`adopted, storing`)."""
        return self if after is Outcome.UNCHANGED else Outcome(f"{self}, {after}")


# What acting on a task's state can do (Tracker.apply); any of these can follow an adoption or a taken earlier
# task (one recorded meanwhile may be further along), so `then` has a member for each.
AFTER_TAKING = (
    Outcome.TRAINING,
    Outcome.STORING,
    Outcome.FAILED,
    Outcome.RESUBMITTED,
    Outcome.COPY_RUNNING,
    Outcome.STORE_REQUEUED,
)
# A submission still being settled: its progress is kept, and the UncertainSubmissions metric counts it.
UNSETTLED = frozenset({Outcome.AMBIGUOUS, Outcome.CHECKING, Outcome.WAITING_FOR_HISTORY, Outcome.ABSENT_ONCE})
