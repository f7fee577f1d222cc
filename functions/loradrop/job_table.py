"""The jobs table underneath `jobs.JobStore`: job items in and out of DynamoDB, the one conditional move every
write is (its parts built by `table_moves`), and the reads. Only the table modules (`table_moves`, this one,
`sample_table`, `jobs`, `budgets`) speak DynamoDB's expression language; use cases call `JobStore`'s named
operations.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, ValidationError

from loradrop.budgets import BudgetChange, MonthTotals, row_key, write_with_budget
from loradrop.job import HISTORY_KEEP_LATEST, HISTORY_LIMIT, Job, JobParams, SettleProgress, iso, state_moves
from loradrop.models import JobStatus, check_move
from loradrop.redaction import redact
from loradrop.samples import SampleStatus
from loradrop.table_moves import (
    Condition,
    build_move,
    deserialize,
    is_side_row,
    serialize,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

BY_PREDICTION_INDEX = "by-prediction"
BY_STATUS_INDEX = "by-status"

Counter = Literal["lost_submissions", "store_requeues"]


class JobPatch(BaseModel):
    """What a move sets on the job; an attribute given as None is removed. Any other name is refused here, so a
    misspelled attribute fails loudly instead of being written and never read back."""

    model_config = ConfigDict(extra="forbid")

    params: JobParams | None = None
    archive: dict[str, Any] | None = None
    dataset: dict[str, Any] | None = None
    warnings: list[str] | None = None
    prediction_id: str | None = None
    task_created_at: str | None = None
    error_code: str | None = None
    error: str | None = None
    weights_uri: str | None = None
    weights_size: int | None = None
    weights_sha256: str | None = None
    model_card_uri: str | None = None
    submit_started_at: str | None = None
    submit_url_sha256: str | None = None
    lost_submissions: int | None = None
    settling: SettleProgress | None = None
    task_missing_since: str | None = None
    store_lease_until: str | None = None
    store_lease_owner: str | None = None
    quote_usd: Decimal | None = None
    budget_month: str | None = None
    reserved_usd: Decimal | None = None

    def sets(self) -> dict[str, Any]:
        given = self.model_dump(include=self.model_fields_set, mode="python")
        if isinstance(given.get("error"), str):  # it can quote WaveSpeed, which can quote our presigned link
            given["error"] = redact(given["error"])
        return {name: value for name, value in given.items() if value is not None}

    def removes(self) -> list[str]:
        return sorted(name for name in self.model_fields_set if getattr(self, name) is None)


@dataclass(frozen=True)
class Moved:
    """What a move did: `done`, and the job after it, or, refused, the job as it stands (None: no such job)."""

    job: Job | None
    done: bool


def job_from_image(image: dict[str, Any]) -> Job:
    """A job from an item in DynamoDB's JSON (a change stream record's image)."""
    return Job.model_validate(deserialize(image))


def _readable(item: dict[str, Any] | None) -> Job | None:
    """The item a refused move found, if it reads as a job: a refusal is an answer, and an odd item must not turn it
    into an error (whoever needs the job reads it and meets the oddity there)."""
    try:
        return Job.model_validate(deserialize(item)) if item else None
    except ValidationError:
        return None


def _is_condition_failure(err: ClientError) -> bool:
    return err.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class JobTable:
    def __init__(
        self, client: DynamoDBClient, table: str, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self._db = client
        self._table = table
        self._clock = clock  # what every write is stamped with (tests pass theirs)

    def now(self) -> str:
        """The time writes are stamped with (ISO 8601, UTC): the table's clock."""
        return iso(self._clock())

    # --- the one write ------------------------------------------------------------------------------------------

    def _move(  # noqa: PLR0913 - one conditional write carries every part of a move
        self,
        job_id: str,
        expected: Collection[JobStatus],
        to: JobStatus,
        *,
        note: str | None = None,
        patch: JobPatch | None = None,
        attempts: int = 0,
        count: Counter | None = None,
        condition: Condition | None = None,
        budget: BudgetChange | None = None,
    ) -> Moved:
        """Move a job to `to` if its status is one of `expected` (and `condition` holds). A history entry is
        added when the status changes or a note is given. `attempts` adds to the count of WaveSpeed tasks that
        may exist; `count` names a counter to add one to; `budget` changes a month's totals in the same
        transaction (BudgetExhausted when its limit refuses). A move `models.ALLOWED_MOVES` does not allow
        raises IllegalMove before anything is written."""
        check_move(expected, to)
        now = self.now()
        fields = patch.sets() if patch else {}
        move = build_move(
            [status.value for status in expected],
            to.value,
            now,
            fields=fields,
            removes=patch.removes() if patch else [],
            note=note,
            attempts=attempts,
            count=count,
        )
        if fields.get("submit_url_sha256"):  # a new attempt: its link digest, for its tasks found later
            move.entry["link"] = fields["submit_url_sha256"]
        expression, allowed, values, names = move.parts(condition)
        moved = self.update(job_id, expression, allowed, values, names, budget)
        if moved.done and moved.job is not None and len(moved.job.history) > HISTORY_LIMIT:
            return Moved(self._trim_history(moved.job), done=True)
        return moved

    def update(  # noqa: PLR0913, PLR0917 - an UpdateItem's parts, and a month's change to write with it
        self,
        job_id: str,
        expression: str,
        condition: str,
        values: dict[str, Any],
        names: dict[str, str] | None = None,
        budget: BudgetChange | None = None,
    ) -> Moved:
        """One conditional UpdateItem: the item after it, or as it stands when the condition did not hold. With
        `budget`, in one transaction with that change to a month's totals (`budgets.write_with_budget`)."""
        done, item = self.write(job_id, expression, condition, values, names, budget)
        if done:
            return Moved(Job.model_validate(deserialize(item)) if item else self.get(job_id), done=True)
        return Moved(_readable(item), done=False)

    def write(  # noqa: PLR0913, PLR0917 - as update()'s
        self,
        key: str,
        expression: str,
        condition: str,
        values: dict[str, Any],
        names: dict[str, str] | None = None,
        budget: BudgetChange | None = None,
    ) -> tuple[bool, dict[str, Any] | None]:
        """update() for any row: whether it was written, and the item after it (None after a transaction: read it),
        or as it stood when refused (in DynamoDB's JSON)."""
        request: dict[str, Any] = {
            "TableName": self._table,
            "Key": serialize({"job_id": key}),
            "UpdateExpression": expression,
            "ConditionExpression": condition,
            "ExpressionAttributeValues": serialize(values),
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        } | ({"ExpressionAttributeNames": names} if names else {})  # none may be empty
        if budget is not None:
            done, refused = write_with_budget(self._db, request, budget.transact_item(self._table, self.now()))
            return (True, None) if done else (False, refused)
        try:
            answer = self._db.update_item(**request, ReturnValues="ALL_NEW")
        except ClientError as err:
            if not _is_condition_failure(err):
                raise
            return False, err.response.get("Item")
        return True, answer["Attributes"]

    def touch(self, job_id: str, status: str, seen_updated_at: str) -> bool:
        """Mark a job the reconciler looked at and left as it was: it goes to the back of its state's queue
        (the status index sorts by `updated_at`), so every stale job is looked at in turn. Only if nothing
        wrote it since it was listed; works on an item too odd to read."""
        try:
            self._db.update_item(
                TableName=self._table,
                Key=serialize({"job_id": job_id}),
                UpdateExpression="SET updated_at = :now, checked_at = :now",
                ConditionExpression="#status = :status AND updated_at = :seen",
                ExpressionAttributeValues=serialize({":now": self.now(), ":status": status, ":seen": seen_updated_at}),
                ExpressionAttributeNames={"#status": "status"},
            )
        except ClientError as err:
            if _is_condition_failure(err):
                return False
            raise
        return True

    def _trim_history(self, job: Job) -> Job:
        """Drop notes from the middle of a long history: never the first entry, the latest, a move between
        states (when the job entered a state is read from them) or an entry naming a task."""
        latest_from = len(job.history) - HISTORY_KEEP_LATEST
        kept = {id(entry) for entry in state_moves(job.history)}
        drop = [
            i
            for i, entry in enumerate(job.history[:latest_from])
            if i > 0 and not entry.prediction_id and id(entry) not in kept
        ]
        if not drop:
            return job
        trimmed = self.update(
            job.job_id,
            "REMOVE "
            + ", ".join(f"history[{i}]" for i in drop)
            + " SET history_omitted = if_not_exists(history_omitted, :zero) + :dropped",
            "size(history) = :length",  # nobody appended meanwhile
            {":zero": 0, ":dropped": len(drop), ":length": len(job.history)},
        )
        return trimmed.job if trimmed.done and trimmed.job is not None else job  # raced: the next write trims

    # --- reading ------------------------------------------------------------------------------------------------

    def get(self, job_id: str) -> Job | None:
        answer = self._db.get_item(TableName=self._table, Key=serialize({"job_id": job_id}), ConsistentRead=True)
        item = answer.get("Item")
        return Job.model_validate(deserialize(item)) if item else None

    def claim(self, job: Job) -> tuple[Job, bool]:
        """Create the job unless its id exists; return the stored job and whether this call created it."""
        item = job.model_dump(mode="python", exclude_none=True)
        try:
            self._db.put_item(
                TableName=self._table,
                Item=serialize(item),
                ConditionExpression="attribute_not_exists(job_id)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as err:
            if not _is_condition_failure(err):
                raise
            old = err.response.get("Item")
            existing = Job.model_validate(deserialize(old)) if old else self.get(job.job_id)
            if existing is None:  # deleted between the two calls: treat as claimed by someone else
                raise
            return existing, False
        return job, True

    def key_by_prediction(self, prediction_id: str) -> str | None:
        """The key of the row (a job's, or a sample's) whose task this is."""
        answer = self._db.query(
            TableName=self._table,
            IndexName=BY_PREDICTION_INDEX,
            KeyConditionExpression="prediction_id = :p",
            ExpressionAttributeValues=serialize({":p": prediction_id}),
            Limit=1,
        )
        items = answer.get("Items", [])
        return str(deserialize(items[0])["job_id"]) if items else None

    def find_by_prediction(self, prediction_id: str) -> Job | None:
        """The job whose training task this is (a sample's task is no job's)."""
        key = self.key_by_prediction(prediction_id)
        return self.get(key) if key is not None and not is_side_row(key) else None

    def stale_keys(
        self, status: JobStatus | SampleStatus, updated_before: str, limit: int
    ) -> Iterator[tuple[str, str]]:
        """(job id, updated_at) of jobs in `status` not updated since `updated_before`, oldest first, from
        the status index alone: reading each item is the caller's, so one odd item stops nothing."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": BY_STATUS_INDEX,
            "KeyConditionExpression": "#status = :s AND updated_at < :t",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": serialize({":s": status.value, ":t": updated_before}),
            "Limit": min(limit, 1000),
        }
        seen = 0
        while seen < limit:
            answer = self._db.query(**kwargs)
            for item in answer.get("Items", []):
                keys = deserialize(item)
                seen += 1
                yield str(keys["job_id"]), str(keys["updated_at"])
                if seen >= limit:
                    return
            if "LastEvaluatedKey" not in answer:
                return
            kwargs["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    def in_status(self, status: JobStatus, limit: int = 500) -> Iterator[Job]:
        """Jobs in `status` (oldest first); for small sets such as SUBMITTING. Items that cannot be read
        are left out."""
        for job_id, _ in self.stale_keys(status, "~", limit):  # "~" sorts after every timestamp
            try:
                job = self.get(job_id)
            except ValidationError:
                continue
            if job is not None and job.status is status:
                yield job

    def list(self, status: JobStatus | None = None, limit: int = 50) -> list[Job]:
        """Newest first; by status through the index, otherwise a bounded scan (for the CLI)."""
        if status is not None:
            answer = self._db.query(
                TableName=self._table,
                IndexName=BY_STATUS_INDEX,
                KeyConditionExpression="#status = :s",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=serialize({":s": status.value}),
                ScanIndexForward=False,
                Limit=limit,
            )
            jobs = [self.get(deserialize(item)["job_id"]) for item in answer.get("Items", [])]
            return [j for j in jobs if j is not None]
        answer = self._db.scan(TableName=self._table, Limit=max(limit, 1000))
        items = [deserialize(item) for item in answer.get("Items", [])]
        found = [Job.model_validate(item) for item in items if not is_side_row(str(item.get("job_id")))]
        return sorted(found, key=lambda j: j.created_at, reverse=True)[:limit]

    def month_totals(self, month: str) -> MonthTotals:
        """A month's spending row (`budgets`), zero if nothing was reserved in it."""
        answer = self._db.get_item(
            TableName=self._table, Key=serialize({"job_id": row_key(month)}), ConsistentRead=True
        )
        return MonthTotals.from_item(month, answer.get("Item"))
