"""The jobs table: one item per upload, moved between states only by conditional writes."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Collection, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from loradrop.models import JobStatus, check_move
from loradrop.redaction import redact

# A job's history grows with every reconciler touch; DynamoDB items stop at 400 KB. Past the limit
# notes in the middle are dropped (the first entry, the latest ones, every move between states and every
# entry naming a task are kept) and counted in `history_omitted`.
HISTORY_LIMIT = 50
HISTORY_KEEP_LATEST = 30
# What an event carries: EventBridge stops at 256 KB per entry; details stay far below.
EVENT_HISTORY = 20
EVENT_TEXT = 2000

BY_PREDICTION_INDEX = "by-prediction"
BY_STATUS_INDEX = "by-status"

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def utc_now() -> str:
    """ISO 8601 UTC with milliseconds: sortable as text, which the status index relies on."""
    return iso(datetime.now(UTC))


def job_id_for(bucket: str, key: str, version: str | None, etag: str | None) -> str:
    """A readable, stable id for one S3 object version (its ETag where the notification has no version)."""
    stem = key.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    slug = re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-")[:40] or "upload"
    # The version id names one upload exactly; without versioning the ETag stands in for it.
    marker = f"v:{version}" if version else f"e:{(etag or '').strip(chr(34))}"
    identity = f"{bucket}\n{key}\n{marker}"
    return f"{slug}-{hashlib.sha256(identity.encode()).hexdigest()[:12]}"


# The history note a failed copy attempt leaves (StoreWeights writes it, the reconciler quotes it).
COPY_FAILED_NOTE = "copy attempt failed"
# A copy runs until its lease ends: nothing may end or re-queue a STORING job before then.
LEASE_FREE = "attribute_not_exists(store_lease_until) OR store_lease_until < :lease_now"


def lease_free(now: str) -> dict[str, Any]:
    """A write's guard (transition's `guard`, `guard_values`): no copy holds the job's lease at `now`."""
    return {"guard": LEASE_FREE, "guard_values": {":lease_now": now}}


class SettleProgress(BaseModel):
    """How far settling an uncertain submission got, kept on the job between reconciler runs (a cursor,
    not a list: an item stops at 400 KB, a busy account's window holds thousands of tasks).

    WaveSpeed's history for the POST's window is read in full each run and its tasks put in order, nearest
    the POST's start first; `cursor` is the last one checked in that order, and `checked_digest` the SHA-256
    of the ids up to it, so a task that shows up behind the cursor later (a lagging history) starts the
    check over instead of being skipped."""

    model_config = ConfigDict(extra="ignore")

    link: str  # the attempt this belongs to (its link digest): progress of an earlier attempt is void
    cursor: str | None = None
    checked_digest: str | None = None
    checked: int = 0  # tasks checked up to the cursor
    unknown: int = 0  # of those, tasks whose upload WaveSpeed does not name
    unknown_ids: list[str] = Field(default_factory=list)  # the first few of them, for the message
    # The first complete read, past the grace, in which no task was this attempt's, and the SHA-256 of
    # its task ids: absence is concluded only when a read at least a few minutes later finds the same.
    absent_since: str | None = None
    absent_digest: str | None = None
    requests: int = 0  # WaveSpeed requests spent settling this attempt (history pages and GETs)


class Job(BaseModel):
    """A job item as stored; `public()` is what users and events see."""

    model_config = ConfigDict(extra="ignore")

    job_id: str
    status: JobStatus
    source_bucket: str
    source_key: str
    source_version: str | None = None
    source_etag: str | None = None
    source_size: int | None = None
    params: dict[str, Any] | None = None
    archive: dict[str, Any] | None = None
    dataset: dict[str, Any] | None = None  # the dataset survey (loradrop.dataset): counts and examples
    warnings: list[str] = Field(default_factory=list)
    prediction_id: str | None = None
    attempts: int = 0
    error_code: str | None = None
    error: str | None = None
    weights_uri: str | None = None
    weights_size: int | None = None
    weights_sha256: str | None = None
    model_card_uri: str | None = None  # model-card.json beside the weights (README.md is there too)
    created_at: str
    updated_at: str
    history: list[dict[str, Any]] = Field(default_factory=list)
    history_omitted: int = 0
    # When the current attempt's POST began, and a hash of the ZIP link it gave WaveSpeed: a task
    # whose signed `input.data` hashes the same was created by this attempt (the link itself is a
    # credential and is never stored).
    submit_started_at: str | None = None
    submit_url_sha256: str | None = None
    lost_submissions: int = 0  # POSTs WaveSpeed's history proved created nothing
    settling: SettleProgress | None = None  # an uncertain submission being settled (SUBMITTING only)
    # Tasks of this job's earlier attempts that turned up after the attempt was given up (WaveSpeed's
    # signed word names their upload link): paid for, so counted in `attempts` and alarmed (StrayTasks).
    stray_tasks: list[str] = Field(default_factory=list)
    task_created_at: str | None = None  # when WaveSpeed says the job's task was created (its `created_at`)
    task_missing_since: str | None = None  # WaveSpeed first said it does not know the job's task
    checked_at: str | None = None  # the reconciler last looked at the job and left it as it was
    store_requeues: int = 0  # copies the reconciler restarted
    store_lease_until: str | None = None  # a copy is running until then (its invocation's end)
    store_lease_owner: str | None = None

    def entered(self, status: JobStatus) -> str | None:
        """When the job last moved into `status` from another state (a retried job's latest attempt is the one
        that counts; notes written within the state, such as a re-queue, are not moves)."""
        times = [str(entry["at"]) for entry in _moves(self.history) if entry.get("status") == status.value]
        return times[-1] if times else None

    def last_note(self, prefix: str) -> str | None:
        """The latest history note starting with `prefix` (e.g. why the last copy attempt failed)."""
        notes = (str(entry.get("note", "")) for entry in reversed(self.history))
        return next((note for note in notes if note.startswith(prefix)), None)

    def public(self) -> dict[str, Any]:
        """JSON-ready fields for users and events (DynamoDB's Decimals become plain numbers)."""
        plain: dict[str, Any] = _plain(self.model_dump(mode="python", exclude_none=True, exclude=_INTERNAL))
        plain["history"] = [{k: v for k, v in entry.items() if k != "link"} for entry in plain.get("history", [])]
        if not plain["stray_tasks"]:
            del plain["stray_tasks"]
        return plain

    def event_detail(self) -> dict[str, Any]:
        """public(), bounded for an EventBridge event: the first and latest history entries (the rest
        counted), long texts cut."""
        detail = self.public()
        history = detail.get("history", [])
        if len(history) > EVENT_HISTORY:
            detail["history"] = history[:1] + history[-(EVENT_HISTORY - 1) :]
            detail["history_omitted"] = detail.get("history_omitted", 0) + len(history) - EVENT_HISTORY
        if isinstance(detail.get("error"), str):
            detail["error"] = _cut(detail["error"], EVENT_TEXT)
        detail["warnings"] = [_cut(w, 300) for w in detail.get("warnings", [])[:20]]
        return detail | {"name": self.name, "summary": self.summary()}

    @property
    def name(self) -> str:
        """The upload's file name, as a person would call the job."""
        return _plain_text(self.source_key.rsplit("/", 1)[-1], 120)

    def summary(self) -> str:
        """One line on how the job ended, for notifications. Plain text without quotes or backslashes: an
        EventBridge input template puts it inside a JSON string."""
        if self.status is JobStatus.COMPLETED:
            size = f"{(self.weights_size or 0) / 1024**2:,.1f} MiB"
            text = f"Weights: {self.weights_uri} ({size}, SHA-256 {self.weights_sha256})."
            if self.model_card_uri:
                text += f" Model card: {self.model_card_uri}."
        else:
            text = f"[{self.error_code}] {self.error}"
        if self.warnings:
            text += f" {len(self.warnings)} warning(s): `loradrop status {self.job_id}`."
        return _plain_text(text, EVENT_TEXT // 2)

    def task_ids(self) -> set[str]:
        """Every WaveSpeed task this job has had (earlier attempts' ids live in its history)."""
        ids = {str(entry["prediction_id"]) for entry in self.history if entry.get("prediction_id")}
        return ids | set(self.stray_tasks) | ({self.prediction_id} if self.prediction_id else set())

    def attempt_links(self) -> list[str]:
        """The link digest of every attempt, oldest first (each SUBMITTING move records its own)."""
        return [str(entry["link"]) for entry in self.history if entry.get("link")]

    def settle_progress(self) -> SettleProgress:
        """Settling progress of the current attempt (a fresh one if what is stored belongs to another)."""
        link = self.submit_url_sha256 or ""
        return self.settling if self.settling is not None and self.settling.link == link else SettleProgress(link=link)


def _moves(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The entries that changed the job's state (the first one, and each whose status differs from the one
    before it); trimming keeps every one of them, so they are always all there."""
    moves, before = [], None
    for entry in history:
        if entry.get("status") != before and "at" in entry:
            moves.append(entry)
        before = entry.get("status")
    return moves


_INTERNAL = {"submit_url_sha256", "store_lease_until", "store_lease_owner", "settling"}


def _plain_text(text: str, limit: int) -> str:
    return _cut(re.sub(r"[\x00-\x1f\x7f]+", " ", text.replace('"', "'").replace("\\", "/")), limit)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def url_digest(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()


def iso(moment: datetime) -> str:
    """The same text form as utc_now(), for any moment."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _redacted(fields: dict[str, Any] | None) -> dict[str, Any] | None:
    """Errors can quote WaveSpeed, which can quote our presigned link: nothing secret is stored."""
    if fields and isinstance(fields.get("error"), str):
        return fields | {"error": redact(fields["error"])}
    return fields


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, JobStatus):
        return value.value
    return value


def _to_dynamo(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: _to_dynamo(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_to_dynamo(v) for v in value]
    return value


def _serialize(values: dict[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(_to_dynamo(v)) for k, v in values.items()}


def _deserialize(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _deserializer.deserialize(v) for k, v in item.items()}


def task_fields(task: Any) -> dict[str, Any]:
    """What a job records of the task it takes: its id, and when WaveSpeed says it was created."""
    return {"prediction_id": task.id} | ({"task_created_at": task.created_at} if task.created_at else {})


def job_from_image(image: dict[str, Any]) -> Job:
    """A job from an item in DynamoDB's JSON (a change stream record's image)."""
    return Job.model_validate(_deserialize(image))


def _is_condition_failure(err: ClientError) -> bool:
    return err.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class JobStore:
    def __init__(self, client: Any, table: str, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._db = client
        self._table = table
        self._clock = clock  # what every write is stamped with (tests pass theirs)

    def _now(self) -> str:
        return iso(self._clock())

    def get(self, job_id: str) -> Job | None:
        answer = self._db.get_item(TableName=self._table, Key=_serialize({"job_id": job_id}), ConsistentRead=True)
        item = answer.get("Item")
        return Job.model_validate(_deserialize(item)) if item else None

    def claim(self, job: Job) -> tuple[Job, bool]:
        """Create the job unless its id exists; return the stored job and whether this call created it."""
        item = job.model_dump(mode="python", exclude_none=True)
        try:
            self._db.put_item(
                TableName=self._table,
                Item=_serialize(item),
                ConditionExpression="attribute_not_exists(job_id)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as err:
            if not _is_condition_failure(err):
                raise
            old = err.response.get("Item")
            existing = Job.model_validate(_deserialize(old)) if old else self.get(job.job_id)
            if existing is None:  # deleted between the two calls: treat as claimed by someone else
                raise
            return existing, False
        return job, True

    def transition(  # noqa: PLR0913 - one conditional write carries every part of a move
        self,
        job_id: str,
        expected: Collection[JobStatus],
        to: JobStatus,
        *,
        note: str | None = None,
        fields: dict[str, Any] | None = None,
        remove: Collection[str] = (),
        attempts: int = 0,
        increment: Collection[str] = (),
        guard: str | None = None,
        guard_values: dict[str, Any] | None = None,
    ) -> Job | None:
        """Move a job to `to` if its status is one of `expected` (and `guard` holds); None when not.

        Every write goes through here, so a late or repeated event that finds the job elsewhere
        changes nothing. A history entry is added when the status changes or a note is given.
        `attempts` adds to the count of WaveSpeed tasks that may exist (+1 before a POST, -1 when
        WaveSpeed proved it created nothing); `increment` names counters to add one to. A move that
        models.ALLOWED_MOVES does not allow raises IllegalMove before anything is written.
        """
        check_move(expected, to)
        now = self._now()
        fields = _redacted(fields)
        note = redact(note) if note else note
        values: dict[str, Any] = {":to": to.value, ":now": now}
        names = {"#status": "status"}
        sets = ["#status = :to", "updated_at = :now"]
        for i, (name, value) in enumerate((fields or {}).items()):
            names[f"#f{i}"] = name
            values[f":f{i}"] = value
            sets.append(f"#f{i} = :f{i}")
        expected_names = []
        for i, status in enumerate(expected):
            values[f":e{i}"] = status.value
            expected_names.append(f":e{i}")
        if attempts:
            sets.append("attempts = if_not_exists(attempts, :zero) + :attempts")
            values.update({":zero": 0, ":attempts": attempts})
        for i, counter in enumerate(increment):
            names[f"#c{i}"] = counter
            sets.append(f"#c{i} = if_not_exists(#c{i}, :zero) + :one")
            values.update({":zero": 0, ":one": 1})
        values.update(guard_values or {})
        entry = {"status": to.value, "at": now}
        if note:
            entry["note"] = note
        if fields and fields.get("prediction_id"):
            entry["prediction_id"] = fields["prediction_id"]
        if fields and fields.get("submit_url_sha256"):  # a new attempt: its link digest, for its tasks found later
            entry["link"] = fields["submit_url_sha256"]
        if note or set(expected) != {to}:  # a pure field update of the same state adds no entry
            sets.append("history = list_append(if_not_exists(history, :empty), :entry)")
            values.update({":empty": [], ":entry": [entry]})
        expression = "SET " + ", ".join(sets)
        if remove:
            for i, name in enumerate(remove):
                names[f"#r{i}"] = name
            expression += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(remove)))
        condition = f"#status IN ({', '.join(expected_names)})" + (f" AND ({guard})" if guard else "")
        item = self._update(job_id, expression, condition, values, names)
        if item is None:
            return None
        job = Job.model_validate(item)
        return self._trim_history(job) if len(job.history) > HISTORY_LIMIT else job

    def _update(
        self, job_id: str, expression: str, condition: str, values: dict[str, Any], names: dict[str, str] | None = None
    ) -> dict[str, Any] | None:
        """One conditional UpdateItem: the item as it is after it, or None when the condition did not hold."""
        try:
            answer = self._db.update_item(
                TableName=self._table,
                Key=_serialize({"job_id": job_id}),
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeValues=_serialize(values),
                ReturnValues="ALL_NEW",
                **({"ExpressionAttributeNames": names} if names else {}),
            )
        except ClientError as err:
            if _is_condition_failure(err):
                return None
            raise
        return _deserialize(answer["Attributes"])

    def record_stray_task(self, job: Job, task_id: str, note: str, *, counted: bool) -> Job | None:
        """Record a task of an earlier attempt on the job, whatever its state (a note in place, no move);
        `counted`: it adds to `attempts` (the tasks that may exist). None if it was recorded already or the
        job moved meanwhile."""
        now = self._now()
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
        item = self._update(
            job.job_id,
            "SET stray_tasks = list_append(if_not_exists(stray_tasks, :empty), :task), "
            "history = list_append(if_not_exists(history, :empty), :entry), updated_at = :now, "
            "attempts = if_not_exists(attempts, :zero) + :counted",
            "#status = :status"
            " AND (attribute_not_exists(stray_tasks) OR NOT contains(stray_tasks, :task_id))"
            " AND (attribute_not_exists(prediction_id) OR prediction_id <> :task_id)",
            values,
            {"#status": "status"},
        )
        return Job.model_validate(item) if item is not None else None

    def touch(self, job_id: str, status: str, seen_updated_at: str) -> bool:
        """Mark a job the reconciler looked at and left as it was: it goes to the back of its state's queue
        (the status index sorts by `updated_at`), so every stale job is looked at in turn. Only if nothing
        wrote it since it was listed; works on an item too odd to read."""
        now = self._now()
        values = {":now": now, ":status": status, ":seen": seen_updated_at}
        condition = "#status = :status AND updated_at = :seen"
        touched = self._update(
            job_id, "SET updated_at = :now, checked_at = :now", condition, values, {"#status": "status"}
        )
        return touched is not None

    def _trim_history(self, job: Job) -> Job:
        """Drop notes from the middle of a long history: never the first entry, the latest, a move between
        states (when the job entered a state is read from them) or an entry naming a task."""
        latest_from = len(job.history) - HISTORY_KEEP_LATEST
        kept = {id(entry) for entry in _moves(job.history)}
        drop = [
            i
            for i, entry in enumerate(job.history[:latest_from])
            if i > 0 and not entry.get("prediction_id") and id(entry) not in kept
        ]
        if not drop:
            return job
        item = self._update(
            job.job_id,
            "REMOVE "
            + ", ".join(f"history[{i}]" for i in drop)
            + " SET history_omitted = if_not_exists(history_omitted, :zero) + :dropped",
            "size(history) = :length",  # nobody appended meanwhile
            {":zero": 0, ":dropped": len(drop), ":length": len(job.history)},
        )
        return Job.model_validate(item) if item is not None else job  # raced: the next write trims

    def find_by_prediction(self, prediction_id: str) -> Job | None:
        answer = self._db.query(
            TableName=self._table,
            IndexName=BY_PREDICTION_INDEX,
            KeyConditionExpression="prediction_id = :p",
            ExpressionAttributeValues=_serialize({":p": prediction_id}),
            Limit=1,
        )
        items = answer.get("Items", [])
        return self.get(_deserialize(items[0])["job_id"]) if items else None

    def stale_keys(self, status: JobStatus, updated_before: str, limit: int) -> Iterator[tuple[str, str]]:
        """(job id, updated_at) of jobs in `status` not updated since `updated_before`, oldest first, from
        the status index alone: reading each item is the caller's, so one odd item stops nothing."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": BY_STATUS_INDEX,
            "KeyConditionExpression": "#status = :s AND updated_at < :t",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": _serialize({":s": status.value, ":t": updated_before}),
            "Limit": min(limit, 1000),
        }
        seen = 0
        while seen < limit:
            answer = self._db.query(**kwargs)
            for item in answer.get("Items", []):
                keys = _deserialize(item)
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
                ExpressionAttributeValues=_serialize({":s": status.value}),
                ScanIndexForward=False,
                Limit=limit,
            )
            jobs = [self.get(_deserialize(item)["job_id"]) for item in answer.get("Items", [])]
            return [j for j in jobs if j is not None]
        answer = self._db.scan(TableName=self._table, Limit=max(limit, 1000))
        found = [Job.model_validate(_deserialize(item)) for item in answer.get("Items", [])]
        return sorted(found, key=lambda j: j.created_at, reverse=True)[:limit]
