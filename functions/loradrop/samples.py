"""Sample images: a few prompts rendered with a job's new LoRA once its weights are stored, as rows beside the job.

Each prompt is one paid WaveSpeed inference task (`wavespeed-ai/flux-dev-lora`), so each is a row of its own in the
jobs table, keyed `<job_id>#sample-<n>` and claimed before its POST, with its own states (in the status index, so
the reconciler finds the stale ones) and its own `prediction_id` (in the task index, so a webhook finds it). A
task is told apart from every other by what WaveSpeed echoes of its input: the LoRA link, the prompt and the
seed (`input_digest`), never by a blind retry. Samples never change the job's own outcome.
"""

from __future__ import annotations

import hashlib
import json
import re
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

if TYPE_CHECKING:
    from loradrop.models import Task

SAMPLE_MODEL = "wavespeed-ai/flux-dev-lora"
MAX_PROMPTS = 4
MAX_PROMPT_CHARS = 500
PROMPTS_RULE = f"at most {MAX_PROMPTS} prompts separated by |, each at most {MAX_PROMPT_CHARS} characters"
TRIGGER_PLACEHOLDER = "{trigger}"
# What each sample is rendered with: WaveSpeed's documented defaults, one 1024x1024 image, the LoRA at full strength.
SAMPLE_SIZE = "1024*1024"
SAMPLE_STEPS = 28
SAMPLE_GUIDANCE = 3.5
LORA_SCALE = 1.0
SAMPLES_FOLDER = "samples/"
_KEY = re.compile(r"^(?P<job>[^#]+)#sample-(?P<index>\d{1,2})$")


class SampleStatus(StrEnum):
    """A sample's states, stored in `status` (distinct from every JobStatus, so no job query meets a sample)."""

    PLANNED = "SAMPLE_PLANNED"  # claimed on the job; no POST sent
    SUBMITTING = "SAMPLE_SUBMITTING"  # its POST is in flight, or got no usable answer (settled by evidence)
    RENDERING = "SAMPLE_RENDERING"  # WaveSpeed's task is known
    STORING = "SAMPLE_STORING"  # the image is being copied
    ENDING = "SAMPLE_ENDING"  # it ended without an image; the worker records that and sums the samples up
    DONE = "SAMPLE_DONE"
    FAILED = "SAMPLE_FAILED"


ENDED = frozenset({SampleStatus.DONE, SampleStatus.FAILED})
_ENDS = {SampleStatus.ENDING, SampleStatus.FAILED}
SAMPLE_MOVES: dict[SampleStatus, frozenset[SampleStatus]] = {
    SampleStatus.PLANNED: frozenset({SampleStatus.PLANNED, SampleStatus.SUBMITTING, *_ENDS}),
    SampleStatus.SUBMITTING: frozenset({SampleStatus.SUBMITTING, SampleStatus.PLANNED, SampleStatus.RENDERING, *_ENDS}),
    SampleStatus.RENDERING: frozenset({SampleStatus.RENDERING, SampleStatus.STORING, *_ENDS}),
    SampleStatus.STORING: frozenset({SampleStatus.STORING, SampleStatus.DONE, *_ENDS}),
    SampleStatus.ENDING: frozenset({SampleStatus.ENDING, SampleStatus.FAILED}),
    SampleStatus.DONE: frozenset(),
    SampleStatus.FAILED: frozenset(),
}


def parse_prompts(value: Any) -> tuple[str, ...]:
    """`a | b` (metadata, the SamplePrompts parameter) or a list: the prompts, empty ones left out; ValueError past
    the limits."""
    parts = value.split("|") if isinstance(value, str) else list(value or ())
    prompts = tuple(p.strip() for p in parts if isinstance(p, str) and p.strip())
    if len(parts) != len([p for p in parts if isinstance(p, str)]):
        raise ValueError("prompts must be text")
    if len(prompts) > MAX_PROMPTS:
        raise ValueError(f"{len(prompts)} prompts")
    for prompt in prompts:
        if len(prompt) > MAX_PROMPT_CHARS or re.search(r"[\x00-\x1f\x7f]", prompt):
            raise ValueError(f"prompt {prompt[:40]!r}… too long or with control characters")
    return prompts


def render_prompt(prompt: str, trigger: str) -> str:
    """The prompt as sent: `{trigger}` becomes the trigger word; a prompt that never names it gets it in front."""
    text = prompt.replace(TRIGGER_PLACEHOLDER, trigger)
    return text if trigger.lower() in text.lower() else f"{trigger}, {text}"


def seed_for(job_id: str, index: int, attempt: int = 0) -> int:
    """A fixed seed per job, prompt and attempt: the same sample renders the same image, no two jobs share a task
    input, and a new attempt after a POST proven lost is told apart from the old one should that turn up after all."""
    marker = f"{job_id}#{index}" + (f"#{attempt}" if attempt else "")
    return int(hashlib.sha256(marker.encode()).hexdigest()[:8], 16) % 2**31


def sample_key(job_id: str, index: int) -> str:
    return f"{job_id}#sample-{index}"


def split_key(key: str) -> tuple[str, int] | None:
    """(job id, index) of a sample row's key; None for any other row."""
    found = _KEY.match(key)
    return (found["job"], int(found["index"])) if found else None


def request_body(prompt: str, seed: int, lora_link: str) -> dict[str, Any]:
    """The inference request for one sample (the pricing endpoint is asked about exactly this body)."""
    return {
        "prompt": prompt,
        "loras": [{"path": lora_link, "scale": LORA_SCALE}],
        "size": SAMPLE_SIZE,
        "num_inference_steps": SAMPLE_STEPS,
        "guidance_scale": SAMPLE_GUIDANCE,
        "num_images": 1,
        "seed": seed,
        "enable_safety_checker": True,
        "output_format": "png",
    }


def input_digest(body: dict[str, Any] | None) -> str | None:
    """SHA-256 of what tells a sample's task apart: its prompt and its seed (ours, unique per job, prompt and
    attempt), in the input of a task with LoRAs. Not the LoRA's link: how WaveSpeed echoes a link is not documented
    (a presigned query re-encoded, a path cached), and a task must never pass for another's over such a detail."""
    body = body or {}
    prompt, seed = body.get("prompt"), body.get("seed")
    if not isinstance(body.get("loras"), list) or not isinstance(prompt, str):
        return None
    if isinstance(seed, bool) or not isinstance(seed, int):
        return None
    return hashlib.sha256(json.dumps([prompt, seed]).encode()).hexdigest()


def is_sample_task(task: Task) -> bool:
    """A task of the inference model (by its input: a trainer's input has `data`, never `loras`)."""
    return task.model == SAMPLE_MODEL or "loras" in (task.input or {})


class Sample(BaseModel):
    """A sample row as stored. Read leniently: an odd row is still a sample."""

    model_config = ConfigDict(extra="ignore")

    job_id: str  # the row's key: `<job_id>#sample-<index>`
    parent_job_id: str
    index: int
    prompt: str  # as sent (the trigger word in it)
    seed: int
    status: SampleStatus
    created_at: str
    updated_at: str
    prediction_id: str | None = None
    task_created_at: str | None = None
    submit_started_at: str | None = None
    submit_digest: str | None = None  # input_digest of the current attempt's body
    earlier_digests: list[str] = Field(default_factory=list)  # of attempts proven lost: their tasks are strays
    stray_tasks: list[str] = Field(default_factory=list)  # tasks of those attempts that turned up: paid, counted
    lora_source: str | None = None  # "wavespeed" (its own output link) or "s3" (a presigned link to the copy)
    attempts: int = 0  # tasks that may exist
    lost_submissions: int = 0
    absent_since: str | None = None  # settling: a complete history first showed no task of it then
    absent_digest: str | None = None
    store_requeues: int = 0
    quote_usd: Decimal | None = None
    budget_month: str | None = None
    reserved_usd: Decimal | None = None
    image_uri: str | None = None
    image_size: int | None = None
    image_sha256: str | None = None
    error_code: str | None = None
    error: str | None = None
    history: list[dict[str, Any]] = Field(default_factory=list)

    @field_validator("history", mode="before")
    @classmethod
    def _entries(cls, value: Any) -> Any:
        return [entry for entry in value if isinstance(entry, dict)] if isinstance(value, list) else []

    @property
    def ended(self) -> bool:
        return self.status in ENDED

    def public(self) -> dict[str, Any]:
        """What the job, its events and the model card show of the sample."""
        shown = {
            "index": self.index,
            "prompt": self.prompt,
            "seed": self.seed,
            "state": self.status.value.removeprefix("SAMPLE_").lower(),
            "prediction_id": self.prediction_id,
            "image_uri": self.image_uri,
            "image_size": self.image_size,
            "image_sha256": self.image_sha256,
            "quote_usd": float(self.quote_usd) if self.quote_usd is not None else None,
            "error_code": self.error_code,
            "error": self.error,
        }
        return {key: value for key, value in shown.items() if value is not None}
