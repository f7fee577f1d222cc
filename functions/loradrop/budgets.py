"""A month's spending, kept in the jobs table beside the jobs: one row per calendar month (UTC), keyed
`budget#YYYY-MM`, with the USD reserved for WaveSpeed tasks that may exist (`committed_usd`) and, of that, what
completed jobs were quoted (`billed_usd`).

A reservation is written in one transaction with the job's move into SUBMITTING (`jobs.JobStore`), under a
condition that the month's total stays within the limit, so no race lets two submitters pass it together; it is
given back in one transaction with the move that proves the attempt created nothing. The row has no `status`,
so it is in no index the jobs are listed by.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

ROW_PREFIX = "budget#"
TRANSACTION_TRIES = 5
_ZERO = Decimal(0)
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def month_of(at: str) -> str:
    """The calendar month (UTC) of an ISO 8601 time, as the row names it: `2026-12`."""
    return at[:7]


def row_key(month: str) -> str:
    return f"{ROW_PREFIX}{month}"


def is_budget_row(key: str) -> bool:
    """Job ids are slugs of file names, which never hold a '#'."""
    return key.startswith(ROW_PREFIX)


class BudgetExhausted(Exception):
    """The month's total has no room for the quote: nothing was written."""

    def __init__(self, month: str, committed: Decimal | None, limit: Decimal) -> None:
        super().__init__(f"the {month} budget of {usd(limit)} has {usd(committed or _ZERO)} committed")
        self.month, self.committed, self.limit = month, committed, limit


@dataclass(frozen=True)
class BudgetChange:
    """What one job move adds to a month's totals; with `limit`, only while `committed_usd` stays within it."""

    month: str
    committed: Decimal = _ZERO
    billed: Decimal = _ZERO
    limit: Decimal | None = None

    def transact_item(self, table: str, now: str) -> dict[str, Any]:
        """The month row's part of the move's transaction."""
        values: dict[str, Any] = {":committed": self.committed, ":billed": self.billed, ":now": now}
        update: dict[str, Any] = {
            "TableName": table,
            "Key": {"job_id": _serializer.serialize(row_key(self.month))},
            "UpdateExpression": "ADD committed_usd :committed, billed_usd :billed SET updated_at = :now",
        }
        if self.limit is not None:
            # DynamoDB cannot add in a condition: the total may be at most the limit less this reservation (a
            # reservation over the whole limit is refused before any write: `JobStore.begin_submission`).
            values |= {":room": self.limit - self.committed, ":limit": self.limit}
            update["UpdateExpression"] += ", limit_usd = :limit"
            update["ConditionExpression"] = "attribute_not_exists(committed_usd) OR committed_usd <= :room"
            update["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        update["ExpressionAttributeValues"] = {k: _serializer.serialize(v) for k, v in values.items()}
        return {"Update": update}


def write_with_budget(
    db: DynamoDBClient, job_update: dict[str, Any], month_update: dict[str, Any]
) -> tuple[bool, dict[str, Any] | None]:
    """A job's conditional update and its month's change, in one transaction: (True, None) when both were
    written; (False, the job item as it stands) when the job's condition refused; BudgetExhausted when the
    month's limit did. Reservations of one month conflict now and then (DynamoDB cancels one of two
    transactions on the same row at once): tried again after a short random pause."""
    for attempt in range(1, TRANSACTION_TRIES + 1):
        try:
            db.transact_write_items(TransactItems=[{"Update": job_update}, month_update])  # type: ignore[typeddict-item,list-item]
        except ClientError as err:
            reasons = err.response.get("CancellationReasons", [])
            codes = [reason.get("Code") for reason in reasons]
            if err.response.get("Error", {}).get("Code") != "TransactionCanceledException" or len(codes) != 2:
                raise
            if codes[0] == "ConditionalCheckFailed":
                return False, reasons[0].get("Item")
            if codes[1] == "ConditionalCheckFailed":
                change = month_update["Update"]
                month = _deserializer.deserialize(change["Key"]["job_id"]).removeprefix(ROW_PREFIX)
                limit = Decimal(_deserializer.deserialize(change["ExpressionAttributeValues"][":limit"]))
                committed = MonthTotals.from_item(month, reasons[1].get("Item")).committed_usd
                raise BudgetExhausted(month, committed, limit) from err
            if "TransactionConflict" in codes and attempt < TRANSACTION_TRIES:
                time.sleep(random.uniform(0.01, 0.05) * attempt)  # noqa: S311 - a pause, not a secret
                continue
            raise
        return True, None
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass(frozen=True)
class MonthTotals:
    """A month as `loradrop budget` shows it."""

    month: str
    committed_usd: Decimal = _ZERO  # reserved for tasks that may exist, completed ones included
    billed_usd: Decimal = _ZERO  # quoted for jobs that completed
    limit_usd: Decimal | None = None  # the limit the last reservation was made under

    @classmethod
    def from_item(cls, month: str, item: dict[str, Any] | None) -> MonthTotals:
        row = {k: _deserializer.deserialize(v) for k, v in (item or {}).items()}
        limit = row.get("limit_usd")
        return cls(
            month,
            Decimal(row.get("committed_usd", _ZERO)),
            Decimal(row.get("billed_usd", _ZERO)),
            Decimal(limit) if limit is not None else None,
        )

    @property
    def in_flight_usd(self) -> Decimal:
        """Reserved for tasks not (yet) completed: training, failed, or not yet proven absent."""
        return self.committed_usd - self.billed_usd


def usd(amount: Decimal) -> str:
    return f"{amount:.2f} USD"
