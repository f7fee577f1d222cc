"""What a task will cost, known before it is paid for: WaveSpeed's quote for the exact body the POST will send,
held against the stack's limits (MaxJobUsd; MonthlyBudgetUsd is reserved with the move into SUBMITTING, see
`budgets`) and the account's balance.

Without a limit the price is information: a quote WaveSpeed will not give is a warning on the job. With one, no
task starts unpriced: the upload waits in RECEIVED, and the reconciler queues it again. A balance below the
quote waits too (a person can top up) instead of paying for a task WaveSpeed would refuse or fail; an unreadable
balance does not stop a job.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from loradrop.budgets import BudgetExhausted, usd
from loradrop.codes import ErrorCode
from loradrop.deadline import Deadline
from loradrop.models import TrainingParams
from loradrop.ports import WaveSpeed
from loradrop.settings import SubmitSettings
from loradrop.wavespeed import MIN_READ_SECONDS, WaveSpeedError

logger = Logger(child=True)
metrics = Metrics()

WAITS = frozenset({ErrorCode.QUOTE_UNAVAILABLE, ErrorCode.INSUFFICIENT_BALANCE})  # what a RECEIVED job may wait for


class MustWait(Exception):
    """Nothing may be paid for yet; the job waits in RECEIVED with this code and reason."""

    def __init__(self, code: ErrorCode, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


class NoTimeToPrice(Exception):
    """The invocation ran out of time to ask: WaveSpeed was not asked, so this says nothing about its price."""


class OverBudget(Exception):
    """The quote is over MaxJobUsd: the job ends REJECTED before any task exists."""

    def __init__(self, quote: Decimal, reason: str) -> None:
        super().__init__(reason)
        self.quote, self.reason = quote, reason


class Pricing:
    def __init__(self, settings: SubmitSettings, wavespeed: WaveSpeed, deadline: Deadline | None) -> None:
        self._settings = settings
        self._wavespeed = wavespeed
        self._deadline = deadline  # for the reads: what the POST needs is kept aside by the caller

    def check(self, params: TrainingParams, body: dict[str, Any]) -> tuple[Decimal | None, list[str]]:
        """The quote (None: WaveSpeed gave none and no limit is set) and the warnings it leaves on the job.
        Raises OverBudget, or MustWait when a limit needs a price it cannot have, or the balance is short."""
        try:
            quote = self._wavespeed.quote(params.model, body, self._deadline)
        except WaveSpeedError as err:
            if self._deadline is not None and self._deadline.remaining() < MIN_READ_SECONDS:
                raise NoTimeToPrice(err.message) from err
            logger.warning("no quote from WaveSpeed", extra={"reason": err.message[:300]})
            if not self._settings.budgeted:
                return None, [f"WaveSpeed gave no price for this task ({err.message[:200]}); it was submitted unpriced"]
            raise MustWait(
                ErrorCode.QUOTE_UNAVAILABLE,
                f"WaveSpeed gave no price for this task ({err.message[:200]}). This stack has a spending limit, so "
                "no task starts unpriced: the upload waits (nothing is paid) and is tried again by itself",
            ) from err
        logger.info("WaveSpeed quoted the task", extra={"quote_usd": str(quote), "model": params.model})
        limit = self._settings.max_job_usd
        if limit is not None and quote > limit:
            raise OverBudget(
                quote,
                f"WaveSpeed quotes {usd(quote)} for this job ({params.steps} steps on {params.model}), over this "
                f"stack's MaxJobUsd of {usd(limit)}: train with fewer steps (x-amz-meta-steps) or raise MaxJobUsd",
            )
        self._check_balance(quote)
        return quote, []

    def _check_balance(self, quote: Decimal) -> None:
        try:
            balance = self._wavespeed.balance(self._deadline)
        except WaveSpeedError as err:  # an undocumented-enough endpoint must not stop training
            logger.warning("WaveSpeed's balance could not be read", extra={"reason": err.message[:300]})
            return
        if balance < quote:
            metrics.add_metric(name="BalanceTooLow", unit=MetricUnit.Count, value=1)
            raise MustWait(
                ErrorCode.INSUFFICIENT_BALANCE,
                f"WaveSpeed's balance ({usd(balance)}) is below this job's quote ({usd(quote)}): top up the "
                "WaveSpeed account; the upload waits (nothing is paid) and starts by itself once it can be paid for",
            )


def exhausted_reason(err: BudgetExhausted, quote: Decimal | None) -> str:
    """Why a job found no room in its month, and what to do."""
    price = usd(quote or Decimal(0))
    if err.committed is None:  # refused before any write: more than the whole month
        return (
            f"this job's quote of {price} is more than the whole MonthlyBudgetUsd ({usd(err.limit)}): raise "
            "MonthlyBudgetUsd, or train with fewer steps"
        )
    return (
        f"this month's budget ({err.month}: MonthlyBudgetUsd {usd(err.limit)}, of which {usd(err.committed)} is "
        f"committed) has no room for this job's quote of {price}: raise MonthlyBudgetUsd or wait for next month"
    )
