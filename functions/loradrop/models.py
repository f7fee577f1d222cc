"""Data shared by every part: job states, training parameters, WaveSpeed predictions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from loradrop.codes import ErrorCode
from loradrop.samples import PROMPTS_RULE, parse_prompts


class JobStatus(StrEnum):
    RECEIVED = "RECEIVED"
    SUBMITTING = "SUBMITTING"
    SUBMITTED = "SUBMITTED"
    TRAINING = "TRAINING"
    STORING = "STORING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    REJECTED = "REJECTED"


TERMINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.REJECTED})

# The one place that says which moves a job may make; the job store refuses any other. A state may
# move to itself where the flows add a note (a re-queue, a failed copy try) or update fields.
ALLOWED_MOVES: dict[JobStatus, frozenset[JobStatus]] = {
    # RECEIVED → SUBMITTED: a task of the job's earlier attempt turned up while no POST was in flight.
    JobStatus.RECEIVED: frozenset(
        {JobStatus.RECEIVED, JobStatus.SUBMITTING, JobStatus.SUBMITTED, JobStatus.REJECTED, JobStatus.FAILED}
    ),
    JobStatus.SUBMITTING: frozenset({JobStatus.SUBMITTING, JobStatus.SUBMITTED, JobStatus.RECEIVED, JobStatus.FAILED}),
    JobStatus.SUBMITTED: frozenset(
        {JobStatus.SUBMITTED, JobStatus.TRAINING, JobStatus.STORING, JobStatus.RECEIVED, JobStatus.FAILED}
    ),
    JobStatus.TRAINING: frozenset({JobStatus.TRAINING, JobStatus.STORING, JobStatus.RECEIVED, JobStatus.FAILED}),
    JobStatus.STORING: frozenset({JobStatus.STORING, JobStatus.COMPLETED, JobStatus.FAILED}),
    JobStatus.FAILED: frozenset({JobStatus.RECEIVED, JobStatus.STORING}),  # `loradrop retry`, a DLQ redrive
    JobStatus.COMPLETED: frozenset(),
    JobStatus.REJECTED: frozenset(),
}


class IllegalMove(ValueError):
    """A flow asked for a move the state machine does not allow: a bug, refused before any write."""


def check_move(expected: Iterable[JobStatus], to: JobStatus) -> None:
    illegal = sorted(status.value for status in expected if to not in ALLOWED_MOVES[status])
    if illegal:
        raise IllegalMove(f"a job may not move from {', '.join(illegal)} to {to.value}")


def state_diagram() -> str:
    """ALLOWED_MOVES as a Mermaid state diagram, moves in place left out (the README shows it; a test
    keeps the two in step)."""
    lines = ["stateDiagram-v2", f"    [*] --> {JobStatus.RECEIVED.value}"]
    for source, targets in ALLOWED_MOVES.items():
        lines += [f"    {source.value} --> {t.value}" for t in JobStatus if t in targets and t is not source]
    lines += [f"    {status.value} --> [*]" for status in JobStatus if status in TERMINAL_STATUSES]
    return "\n".join(lines)


# States the reconciler asks WaveSpeed about when a job has sat in them too long.
WAITING_ON_WAVESPEED = (JobStatus.SUBMITTED, JobStatus.TRAINING, JobStatus.STORING)

# Failures a person may retry (`loradrop retry`, or a store-DLQ redrive): "store" copies the weights
# again from the same task while WaveSpeed keeps them (about 7 days); "submit" starts a new, paid task.
# Anything else needs a new upload (fix the input) or a look at WaveSpeed first (SUBMIT_UNSETTLED).
# Every failure whose message tells the user to run `loradrop retry` is in one of these (a test reads the
# messages in the code and holds them to it).
STORE_RETRYABLE = frozenset(
    {ErrorCode.STORE_FAILED, ErrorCode.STORE_TIMEOUT, ErrorCode.OUTPUT_TOO_LARGE, ErrorCode.OUTPUT_REFUSED}
)
# WaveSpeed's own (a task's code, its status in capitals), and loradrop's
SUBMIT_RETRYABLE = frozenset({"1402", "TIMEOUT", "CANCELLED", "DELETED"}) | {
    ErrorCode.NO_OUTPUT,
    ErrorCode.TASK_GONE,
    ErrorCode.SUBMIT_FAILED,
    ErrorCode.NOT_SUBMITTED,
    ErrorCode.QUOTE_UNAVAILABLE,
    ErrorCode.INSUFFICIENT_BALANCE,
    ErrorCode.OVER_BUDGET,  # only a job with earlier tasks ends FAILED for it (a first attempt is REJECTED)
    ErrorCode.BUDGET_EXHAUSTED,
}


def retry_kind(error_code: str | None) -> Literal["store", "submit"] | None:
    code = error_code or ""
    if code in STORE_RETRYABLE:
        return "store"
    if code in SUBMIT_RETRYABLE or (code.isdigit() and 5000 <= int(code) <= 5999):
        return "submit"
    return None


TRAINER_MODELS = ("wavespeed-ai/flux-dev-lora-trainer", "wavespeed-ai/flux-dev-lora-trainer-turbo")
TrainerModel = Literal["wavespeed-ai/flux-dev-lora-trainer", "wavespeed-ai/flux-dev-lora-trainer-turbo"]

# S3 user-metadata key (x-amz-meta-<key>) for each training parameter, and its rule in words.
PARAMETER_METADATA = {
    "trigger_word": ("trigger-word", "1 to 64 characters, no control characters"),
    "steps": ("steps", "a whole number from 1000 to 10000"),
    "learning_rate": ("learning-rate", "a number greater than 0 and at most 1"),
    "lora_rank": ("lora-rank", "a whole number from 1 to 64"),
    "model": ("model", "one of " + ", ".join(TRAINER_MODELS)),
    "sample_prompts": ("sample-prompts", PROMPTS_RULE),
}


def decode_metadata(value: str) -> str:
    """S3 hands back non-ASCII user metadata RFC 2047-encoded (`=?UTF-8?B?em/Dqw==?=` for "zoë"):
    decode it so the value is validated and used as the user wrote it."""
    if "=?" not in value:
        return value
    from email.header import decode_header, make_header  # only for the rare encoded value

    try:
        return str(make_header(decode_header(value)))
    except (ValueError, LookupError, UnicodeDecodeError):
        return value  # not valid RFC 2047 after all: validated as it stands


class InvalidParameters(ValueError):
    """Training parameters a user supplied break WaveSpeed's documented ranges."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class TrainingParams(BaseModel):
    """The trainer's parameters, with WaveSpeed's documented defaults and ranges."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    trigger_word: str = Field(default="p3r5on", min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")
    steps: int = Field(default=1000, ge=1000, le=10000, strict=False)
    learning_rate: Decimal = Field(default=Decimal("0.0004"), gt=0, le=1)
    lora_rank: int = Field(default=16, ge=1, le=64)
    model: TrainerModel = "wavespeed-ai/flux-dev-lora-trainer"
    # Rendered with the LoRA once it is stored (`loradrop.sampling`); not sent to the trainer.
    sample_prompts: tuple[str, ...] = ()

    @field_validator("sample_prompts", mode="before")
    @classmethod
    def _prompts(cls, value: Any) -> Any:
        return parse_prompts(value)

    @field_validator("steps", "lora_rank", mode="before")
    @classmethod
    def _whole_number(cls, value: Any) -> Any:
        # "1000" and 1000 are fine; "1000.5", "1e3" or True are not what the user meant.
        if isinstance(value, bool) or (isinstance(value, str) and not value.strip().isdigit()):
            raise ValueError("not a whole number")
        return int(value) if isinstance(value, str) else value

    @field_validator("learning_rate", mode="before")
    @classmethod
    def _decimal(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("not a number")
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            raise ValueError("not a number") from None
        if not number.is_finite():
            raise ValueError("not a finite number")
        return number

    @field_validator("trigger_word", mode="before")
    @classmethod
    def _strip(cls, value: Any) -> Any:
        return value.strip() if isinstance(value, str) else value

    @classmethod
    def build(cls, values: Mapping[str, Any]) -> TrainingParams:
        """Validate values keyed by field name; raise InvalidParameters in a user's words."""
        try:
            return cls.model_validate(dict(values))
        except ValidationError as err:
            problems = []
            for error in err.errors():
                field = str(error["loc"][0]) if error["loc"] else "?"
                meta_key, rule = PARAMETER_METADATA.get(field, (field, "a known parameter"))
                problems.append(f"{meta_key}={values.get(field)!r} is invalid: must be {rule}")
            raise InvalidParameters(problems) from err

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str], defaults: TrainingParams) -> tuple[TrainingParams, list[str]]:
        """Parameters from S3 user metadata over the stack's defaults, plus warnings for unknown keys."""
        by_key = {meta_key: field for field, (meta_key, _) in PARAMETER_METADATA.items()}
        values: dict[str, Any] = defaults.model_dump()
        unknown, warnings = [], []
        for key, value in metadata.items():
            field = by_key.get(key.lower())
            if field is None:
                unknown.append(key)
            elif field == "sample_prompts":  # optional: a mistake there costs the samples, never the training
                try:
                    values[field] = parse_prompts(decode_metadata(value))
                except ValueError as err:
                    values[field] = ()
                    warnings.append(f"sample-prompts ignored ({err}): it must be {PROMPTS_RULE}; no sample images")
            else:
                values[field] = decode_metadata(value)
        warnings += [f"ignored unknown metadata: {', '.join(sorted(unknown))}"] if unknown else []
        return cls.build(values), warnings

    def to_wavespeed(self, data_url: str) -> dict[str, Any]:
        """The JSON body of WaveSpeed's training request."""
        return {
            "data": data_url,
            "trigger_word": self.trigger_word,
            "steps": self.steps,
            "learning_rate": float(self.learning_rate),
            "lora_rank": self.lora_rank,
        }


class Task(BaseModel):
    """A WaveSpeed task as its API describes it (the API calls it a prediction: its paths, and the
    `prediction_id` loradrop stores, keep that word). Parsed leniently: unknown fields are kept, and a
    malformed status, code or output list becomes "unknown"/None/[] instead of an error, so one
    odd answer never stops the webhook or the reconciler (only a missing id is fatal)."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(min_length=1, max_length=200)
    status: str = "created"
    model: str | None = None
    input: dict[str, Any] | None = None
    outputs: list[str] = Field(default_factory=list)
    error: str | None = None
    code: int | None = None
    created_at: str | None = None

    @field_validator("status", mode="before")
    @classmethod
    def _status(cls, value: Any) -> Any:
        return value.strip().lower()[:40] or "unknown" if isinstance(value, str) else "unknown"

    @field_validator("outputs", mode="before")
    @classmethod
    def _outputs(cls, value: Any) -> Any:
        return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []

    @field_validator("code", mode="before")
    @classmethod
    def _code(cls, value: Any) -> Any:
        if isinstance(value, bool):
            return None
        if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
            return int(value)
        return None

    @field_validator("error", "model", "created_at", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return None if value is None else str(value)

    @field_validator("input", mode="before")
    @classmethod
    def _input(cls, value: Any) -> Any:
        return value if isinstance(value, dict) else None

    @property
    def weights_url(self) -> str | None:
        """The .safetensors output, else the first one (WaveSpeed's docs name no other rule)."""
        for url in self.outputs:
            if url.split("?", 1)[0].lower().endswith(".safetensors"):
                return url
        return self.outputs[0] if self.outputs else None

    @property
    def data_url(self) -> str | None:
        """The ZIP URL the task was created with (`input.data`), when the answer carries it."""
        data = (self.input or {}).get("data")
        return data if isinstance(data, str) and data else None


def parse_tasks(items: list[Any]) -> list[Task]:
    """The items of a history page that are predictions at all (each must at least have an id)."""
    parsed = []
    for item in items:
        try:
            parsed.append(Task.model_validate(item))
        except ValidationError:
            continue
    return parsed


# ----- what WaveSpeed's task outcomes mean for a user -----
ENDED_TASK_STATUSES = frozenset({"failed", "cancelled", "timeout", "deleted"})
KNOWN_TASK_STATUSES = frozenset({"created", "processing", "completed"}) | ENDED_TASK_STATUSES
# What a user should do about each documented failure code.
FAILURE_HINTS = {
    1200: "an image was flagged by content moderation: remove it and upload again",
    1400: "a required parameter was missing: check the upload's metadata",
    1401: "a parameter was invalid: check the upload's metadata",
    1402: "WaveSpeed could not download the ZIP (its link may have expired): `loradrop retry JOB_ID` sends a new link",
}


def is_retryable(task: Task) -> bool:
    code = task.code
    return task.status == "timeout" or (code is not None and (5000 <= code <= 5999 or code == 1402))


def describe_failure(task: Task) -> str:
    text = f"WaveSpeed task {task.id} {task.status}"
    if task.code is not None:
        text += f" with code {task.code}"
    if task.error:
        text += f": {task.error[:500]}"
    hint = FAILURE_HINTS.get(task.code or 0)
    if hint is None and task.code is not None and 1000 <= task.code < 2000:
        hint = "fix the input and upload again"
    if hint is None and (is_retryable(task) or task.status in ("cancelled", "deleted")):
        hint = "a WaveSpeed-side problem: `loradrop retry JOB_ID` or upload again later"
    return f"{text} ({hint})" if hint else text
