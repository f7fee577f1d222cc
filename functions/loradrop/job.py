"""A job as stored: one item per upload, its history, and what users and events see of it."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from loradrop.models import JobStatus

# A job's history grows with every reconciler touch; DynamoDB items stop at 400 KB. Past the limit
# notes in the middle are dropped (the first entry, the latest ones, every move between states and every
# entry naming a task are kept) and counted in `history_omitted`.
HISTORY_LIMIT = 50
HISTORY_KEEP_LATEST = 30
# What an event carries: EventBridge stops at 256 KB per entry; details stay far below.
EVENT_HISTORY = 20
EVENT_TEXT = 2000


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


class JobParams(BaseModel):
    """The training parameters a job was submitted with (`models.TrainingParams`, as stored). Read leniently:
    a row written under other limits, or by another version, is still a job."""

    model_config = ConfigDict(extra="allow")

    trigger_word: str | None = None
    steps: int | None = None
    learning_rate: Decimal | None = None
    lora_rank: int | None = None
    model: str | None = None  # the trainer
    sample_prompts: list[str] | None = None  # as the upload or the stack gave them (`loradrop.samples`)


class HistoryEntry(BaseModel):
    """One line of a job's history: a move into `status`, or a note within it. Read leniently (an odd row's
    values become text, unknown keys are kept), as any item in the table may be odd."""

    model_config = ConfigDict(extra="allow")

    status: str | None = None  # a JobStatus's value
    at: str | None = None
    note: str | None = None
    prediction_id: str | None = None  # the task it names
    link: str | None = None  # a new attempt's link digest, for its tasks found later (never shown)

    @field_validator("status", "at", "note", "prediction_id", "link", mode="before")
    @classmethod
    def _text(cls, value: Any) -> str | None:
        return None if value is None else str(value)


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
    params: JobParams | None = None
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
    history: list[HistoryEntry] = Field(default_factory=list)
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
    # What WaveSpeed quoted for the current attempt's task (USD), and, with a MonthlyBudgetUsd, the month whose
    # total holds it (`budget.month_of`) and the amount the current attempt reserved there (gone once released).
    quote_usd: Decimal | None = None
    budget_month: str | None = None
    reserved_usd: Decimal | None = None
    # The sample images (`loradrop.samples`), once every one of them ended, and when that was.
    samples: list[dict[str, Any]] | None = None
    samples_settled_at: str | None = None

    def entered(self, status: JobStatus) -> str | None:
        """When the job last moved into `status` from another state (a retried job's latest attempt is the one
        that counts; notes written within the state, such as a re-queue, are not moves)."""
        times = [entry.at for entry in state_moves(self.history) if entry.status == status.value and entry.at]
        return times[-1] if times else None

    def last_note(self, prefix: str) -> str | None:
        """The latest history note starting with `prefix` (e.g. why the last copy attempt failed)."""
        notes = (entry.note or "" for entry in reversed(self.history))
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
            if self.samples is not None:
                images = [str(sample["image_uri"]) for sample in self.samples if sample.get("image_uri")]
                text += f" Samples: {len(images)} of {len(self.samples)} rendered" + (
                    f": {', '.join(images)}." if images else "."
                )
        else:
            text = f"[{self.error_code}] {self.error}"
        if self.warnings:
            text += f" {len(self.warnings)} warning(s): `loradrop status {self.job_id}`."
        return _plain_text(text, EVENT_TEXT // 2)

    def task_ids(self) -> set[str]:
        """Every WaveSpeed task this job has had (earlier attempts' ids live in its history)."""
        ids = {entry.prediction_id for entry in self.history if entry.prediction_id}
        return ids | set(self.stray_tasks) | ({self.prediction_id} if self.prediction_id else set())

    def attempt_links(self) -> list[str]:
        """The link digest of every attempt, oldest first (each SUBMITTING move records its own)."""
        return [entry.link for entry in self.history if entry.link]

    def settle_progress(self) -> SettleProgress:
        """Settling progress of the current attempt (a fresh one if what is stored belongs to another)."""
        link = self.submit_url_sha256 or ""
        return self.settling if self.settling is not None and self.settling.link == link else SettleProgress(link=link)


def state_moves(history: list[HistoryEntry]) -> list[HistoryEntry]:
    """The entries that changed the job's state (the first one, and each whose status differs from the one
    before it); trimming keeps every one of them, so they are always all there."""
    moves, before = [], None
    for entry in history:
        if entry.status != before and entry.at is not None:
            moves.append(entry)
        before = entry.status
    return moves


_INTERNAL = {"submit_url_sha256", "store_lease_until", "store_lease_owner", "settling", "reserved_usd"}


def _plain_text(text: str, limit: int) -> str:
    return _cut(re.sub(r"[\x00-\x1f\x7f]+", " ", text.replace('"', "'").replace("\\", "/")), limit)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def s3_location(uri: str) -> tuple[str, str]:
    """(bucket, key) of an `s3://bucket/key` URI, as the job records its weights, card and images."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def url_digest(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()


def iso(moment: datetime) -> str:
    """The same text form as utc_now(), for any moment."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def hours(span: timedelta) -> str:
    """A span as a message says it: `24 hours`, `1 hour`, `0.5 hours`."""
    count = span.total_seconds() / 3600
    return f"{count:g} hours" if count != 1 else "1 hour"


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


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
