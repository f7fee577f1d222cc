"""Per-function settings, read from the environment on first use and cached.

Each function gets a pydantic model listing exactly the variables it needs; a missing or
malformed variable fails loudly at the first invocation instead of hiding behind a default.
"""

from __future__ import annotations

import os
from decimal import Decimal
from functools import cache
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class SettingsError(RuntimeError):
    """The function's environment is incomplete or invalid (a deployment problem)."""


class _EnvModel(BaseModel):
    # defer_build: a function builds the validator of its own settings only, not every part's and
    # every other function's (they are all defined in this module).
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True, defer_build=True)

    @classmethod
    def from_env(cls) -> Self:
        return cls.from_mapping(dict(os.environ))

    @classmethod
    def from_mapping(cls, environment: dict[str, str]) -> Self:
        """From a function's variables as given (the CLI reads a deployed function's)."""
        try:
            return cls.model_validate(environment)
        except ValidationError as err:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
            raise SettingsError(f"{cls.__name__} cannot be read from the environment: {problems}") from err


# ----- small parts, composed below into each function's settings -----
class JobsPart(_EnvModel):
    jobs_table: str = Field(alias="JOBS_TABLE", min_length=1)
    # Multiplies queue retry delays; the local stack compresses time with it.
    retry_delay_scale: float = Field(alias="RETRY_DELAY_SCALE", default=1.0, gt=0, le=1)


class WaveSpeedPart(_EnvModel):
    wavespeed_api_base: str = Field(alias="WAVESPEED_API_BASE", default="https://api.wavespeed.ai")
    wavespeed_secret_id: str = Field(alias="WAVESPEED_SECRET_ID", min_length=1)
    secret_max_age_seconds: int = Field(alias="SECRET_MAX_AGE_SECONDS", default=300, ge=0)
    wavespeed_result_tries: int = Field(alias="WAVESPEED_RESULT_TRIES", default=3, ge=1, le=10)
    # Per try; tries x timeout must fit the function's timeout (the webhook function has 15 s).
    wavespeed_result_timeout: float = Field(alias="WAVESPEED_RESULT_TIMEOUT_SECONDS", default=15.0, gt=0)
    # The official SDK's submit timeout; the reconciler waits this long before it questions a POST.
    submit_timeout_seconds: float = Field(alias="SUBMIT_TIMEOUT_SECONDS", default=60.0, gt=0)


class HandOffPart(_EnvModel):
    """Where a tracked task goes next: the store queue, or the intake queue for one more attempt."""

    store_queue_url: str = Field(alias="STORE_QUEUE_URL", min_length=1)
    intake_queue_url: str = Field(alias="INTAKE_QUEUE_URL", min_length=1)
    max_attempts: int = Field(alias="MAX_ATTEMPTS", default=2, ge=1, le=10)
    store_max_requeues: int = Field(alias="STORE_MAX_REQUEUES", default=3, ge=0, le=20)


class WebhookPart(_EnvModel):
    webhook_tolerance_seconds: int = Field(alias="WEBHOOK_TOLERANCE_SECONDS", default=300, ge=1)
    webhook_max_body_bytes: int = Field(alias="WEBHOOK_MAX_BODY_BYTES", default=256 * 1024, ge=1024)


class ReconcilePart(_EnvModel):
    reconcile_after_seconds: int = Field(alias="RECONCILE_AFTER_SECONDS", default=900, ge=0)
    reconcile_batch_limit: int = Field(alias="RECONCILE_BATCH_LIMIT", default=200, ge=1)
    # An uncertain submission: wait this long for WaveSpeed's history to show a task before deciding
    # none was created (at most an hour), and end the job FAILED if its records stay ambiguous this
    # long (at most six days: the history covers seven).
    uncertain_grace_seconds: int = Field(alias="UNCERTAIN_GRACE_SECONDS", default=1800, ge=0, le=3600)
    settle_deadline_seconds: int = Field(alias="SETTLE_DEADLINE_SECONDS", default=86400, ge=0, le=6 * 86400)
    # WaveSpeed's word that something is not there (no task in a complete history, a task it does not
    # know) counts only when it holds on two reads at least this far apart.
    absence_confirm_seconds: float = Field(alias="ABSENCE_CONFIRM_SECONDS", default=300, ge=0, le=3600)


class LimitsPart(_EnvModel):
    # Spending limits in USD (empty: none): one job's quote, and the quotes reserved in a calendar month (UTC).
    max_job_usd: Decimal | None = Field(alias="MAX_JOB_USD", default=None, gt=0)
    monthly_budget_usd: Decimal | None = Field(alias="MONTHLY_BUDGET_USD", default=None, gt=0)

    @field_validator("max_job_usd", "monthly_budget_usd", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @property
    def budgeted(self) -> bool:
        """A spending limit is set: no task is started without a price."""
        return self.max_job_usd is not None or self.monthly_budget_usd is not None


class SubmitPart(_EnvModel):
    webhook_url: str = Field(alias="WEBHOOK_URL", min_length=1)
    trainer_model: str = Field(alias="TRAINER_MODEL", default="wavespeed-ai/flux-dev-lora-trainer")
    default_trigger_word: str = Field(alias="DEFAULT_TRIGGER_WORD", default="p3r5on")
    default_steps: int = Field(alias="DEFAULT_STEPS", default=1000)
    default_learning_rate: Decimal = Field(alias="DEFAULT_LEARNING_RATE", default=Decimal("0.0004"))
    default_lora_rank: int = Field(alias="DEFAULT_LORA_RANK", default=16)
    sample_prompts: str = Field(alias="SAMPLE_PROMPTS", default="")  # `|`-separated; empty: no samples
    presign_expiry_seconds: int = Field(alias="PRESIGN_EXPIRY_SECONDS", default=43200, ge=900, le=604800)
    max_archive_bytes: int = Field(alias="MAX_ARCHIVE_BYTES", default=2 * 1024**3, gt=0)
    max_entries: int = Field(alias="MAX_ARCHIVE_ENTRIES", default=2000, gt=0)
    max_uncompressed_bytes: int = Field(alias="MAX_UNCOMPRESSED_BYTES", default=4 * 1024**3, gt=0)
    max_compression_ratio: int = Field(alias="MAX_COMPRESSION_RATIO", default=100, gt=1)
    # warn: the dataset survey's findings become warnings; strict: a set unfit to train on is REJECTED.
    dataset_policy: Literal["warn", "strict"] = Field(alias="DATASET_POLICY", default="warn")
    # The account tier's task starts per minute, and how many submitters share them (the SQS mapping's
    # MaximumConcurrency): how long a rate-limited upload waits.
    starts_per_minute: int = Field(alias="WAVESPEED_STARTS_PER_MINUTE", default=2, ge=1)
    submit_concurrency: int = Field(alias="SUBMIT_CONCURRENCY", default=2, ge=1)
    # How long an upload may wait in RECEIVED for a price or a balance before it ends FAILED (as the reconciler's).
    settle_deadline_seconds: int = Field(alias="SETTLE_DEADLINE_SECONDS", default=86400, ge=0, le=6 * 86400)

    def training_defaults(self) -> dict[str, Any]:
        """The training parameters an upload's metadata does not set (`models.TrainingParams.build` checks them)."""
        return {
            "trigger_word": self.default_trigger_word,
            "steps": self.default_steps,
            "learning_rate": self.default_learning_rate,
            "lora_rank": self.default_lora_rank,
            "model": self.trainer_model,
            "sample_prompts": self.sample_prompts,
        }


class SamplesPart(LimitsPart):
    """What the sample worker (StoreWeights) needs to start and track sample tasks (`loradrop.samples`)."""

    webhook_url: str = Field(alias="WEBHOOK_URL", min_length=1)
    store_queue_url: str = Field(alias="STORE_QUEUE_URL", min_length=1)


class StorePart(_EnvModel):
    weights_bucket: str = Field(alias="WEIGHTS_BUCKET", min_length=1)
    weights_prefix: str = Field(alias="WEIGHTS_PREFIX", default="loras/")
    output_hosts: str = Field(alias="OUTPUT_HOSTS", default="*.cloudfront.net,*.wavespeed.ai")
    store_max_receives: int = Field(alias="STORE_MAX_RECEIVES", default=5, ge=1)
    # 8 MiB parts x 4 threads: measured flat memory (~130 MiB peak) at 100 MiB and 1 GiB (docs/benchmarks.md).
    part_size_mib: int = Field(alias="WEIGHTS_PART_SIZE_MIB", default=8, ge=5, le=512)
    part_concurrency: int = Field(alias="WEIGHTS_PART_CONCURRENCY", default=4, ge=1, le=32)
    # A rank-64 LoRA is well under 1 GiB; a URL serving more is not a LoRA.
    max_weights_mib: int = Field(alias="MAX_WEIGHTS_MIB", default=4096, ge=1)


# ----- each function's settings: exactly the parts it uses -----
class CommonSettings(JobsPart, WaveSpeedPart):
    """What every function that moves jobs needs: the jobs table, WaveSpeed."""


class TrackingSettings(CommonSettings, HandOffPart):
    """What tracking a task needs, from a webhook or the reconciler."""


class SubmitSettings(CommonSettings, SubmitPart, LimitsPart):
    pass


class WebhookSettings(TrackingSettings, WebhookPart):
    pass


class StoreSettings(CommonSettings, StorePart, SamplesPart):
    pass


class ReconcileSettings(TrackingSettings, ReconcilePart):
    pass


class EventsSettings(_EnvModel):
    """PublishEvents: where job events go (it reads the jobs table's change stream, not the table)."""

    event_bus_name: str = Field(alias="EVENT_BUS_NAME", min_length=1)


@cache
def events_settings() -> EventsSettings:
    return EventsSettings.from_env()


@cache
def submit_settings() -> SubmitSettings:
    return SubmitSettings.from_env()


@cache
def webhook_settings() -> WebhookSettings:
    return WebhookSettings.from_env()


@cache
def store_settings() -> StoreSettings:
    return StoreSettings.from_env()


@cache
def reconcile_settings() -> ReconcileSettings:
    return ReconcileSettings.from_env()
