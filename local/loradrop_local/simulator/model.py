"""The simulator's configuration, its fault queues, and WaveSpeed's task as the API shows it."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

TRAINER_MODELS = ("wavespeed-ai/flux-dev-lora-trainer", "wavespeed-ai/flux-dev-lora-trainer-turbo")
INFERENCE_MODEL = "wavespeed-ai/flux-dev-lora"  # FLUX dev with LoRAs: the sample images
MODELS = (*TRAINER_MODELS, INFERENCE_MODEL)
# USD per 1,000 steps: step-priced models cost `base_price * steps / 1000` (WaveSpeed's own MCP server's model);
# the figures are the third-party ones in wavespeed-api.md, not official.
BASE_PRICES = {TRAINER_MODELS[0]: 1.0, TRAINER_MODELS[1]: 0.75}
DEFAULT_STEPS = 1000
# USD per image ("per image (ask the pricing endpoint)"); the figure is the simulator's own, not WaveSpeed's.
IMAGE_PRICES = {INFERENCE_MODEL: 0.025}
BALANCE_PATHS = ("/api/v3/balance", "/api/v3/account/balance")
BLOCK = 1024 * 1024


@dataclass
class SimulatorConfig:
    api_key: str = "sim-api-key"
    webhook_secret: str = "whsec_simulated-webhook-secret"
    starts_per_minute: int | None = None  # None: no rate limit
    minute_seconds: float = 60.0  # shorten "a minute" for tests
    submit_latency: float = 0.0  # how long WaveSpeed takes to answer a POST (about 1 s in reality)
    processing_after: float = 0.05  # created → processing (the ZIP is fetched then)
    train_seconds: float = 0.2  # processing → completed
    output_size: int = 1024 * 1024
    lora_rank: int = 16
    webhook_retries: int = 3
    webhook_backoff: float = 0.2  # doubles on each retry
    webhook_timeout: float = 5.0
    # Whether GET .../result carries the task's `input` (the docs mark it optional; webhooks always do).
    result_has_input: bool = True
    # The history's answers: with an integer `total` (documented) or without; and a page size the server
    # may silently cap below what was asked for.
    history_total: bool = True
    history_page_cap: int = 100
    # The account's balance in USD, which each created task spends (a POST it cannot pay for is refused, 403),
    # and which of the two documented balance paths this API answers (the other is a 404).
    balance: float = 10_000.0
    balance_paths: tuple[str, ...] = BALANCE_PATHS
    # flux-dev-lora: whether a LoRA `path` given as an https URL is refused at the POST (400, 1401), as an
    # endpoint that takes Hugging Face repo ids only would; the docs leave which one WaveSpeed is unknown.
    lora_urls_refused: bool = False


@dataclass
class Faults:
    """Queues of faults, each consumed by the next matching request or task.

    They apply alike to training tasks and to `flux-dev-lora`'s image tasks (whose outputs are the images),
    except `output_size` and `header`, which shape a safetensors output and so mean nothing to an image task.

    submit: "429", "500", "503", "slow:<seconds>", "drop_before_create", "drop_after_create",
            "502_after_create", "504_after_create" (a gateway's error after the task was created),
            "400_echo" (a refusal quoting the request, presigned link and all)
    result: "500", "429", "drop", "slow:<seconds>", "proxy_404" (a CDN's HTML 404 page, not WaveSpeed's JSON)
    history: "500", "drop" — the next prediction-history requests fail
    pricing: "500", "drop", "proxy_502" — the next pricing requests fail
    balance: "500" — the next balance requests fail
    download: "truncate", "vanish", "slow:<seconds>", "reset", "redirect:<url>" — the next GETs of any output,
              weights or image; a task that fetches a LoRA from the simulator's own /outputs/ takes one too
    webhook: "drop", "duplicate:<n>", "out_of_order", "lie:<url>", "early"
    task: (code, message) pairs — the next tasks fail with that WaveSpeed code ("{input}" in the message
          echoes the task's input)
    ending: "cancelled", "timeout", "deleted" — the next tasks end in that status instead
    garbled: N — the next task's first N result answers do not parse (`"status": null`, no outputs list)
    output: URLs — the next completed tasks list this URL as their output (hostile WaveSpeed data)
    output_size: bytes — the next task's output is this big
    header: bytes — the next completed task's output starts with this safetensors header (JSON), malformed or not
    held: N — the next N tasks stay `processing` until `Simulator.release()`

    `images_only`: while set, `submit`, `task`, `ending` and `webhook` faults are taken only by image POSTs and tasks
    (`flux-dev-lora`), so a training task retried meanwhile never takes what a test meant for its samples.
    """

    submit: deque[str] = field(default_factory=deque)
    result: deque[str] = field(default_factory=deque)
    download: deque[str] = field(default_factory=deque)
    webhook: deque[str] = field(default_factory=deque)
    task: deque[tuple[int, str]] = field(default_factory=deque)
    ending: deque[str] = field(default_factory=deque)
    garbled: deque[int] = field(default_factory=deque)
    output: deque[str] = field(default_factory=deque)
    output_size: deque[int] = field(default_factory=deque)
    history: deque[str] = field(default_factory=deque)
    header: deque[bytes] = field(default_factory=deque)
    held: deque[int] = field(default_factory=deque)
    pricing: deque[str] = field(default_factory=deque)
    balance: deque[str] = field(default_factory=deque)
    images_only: bool = False

    def takes(self, model: str) -> bool:
        """Whether a POST or task of `model` takes the per-task faults now."""
        return not self.images_only or model.rsplit("/", 1)[-1] == "flux-dev-lora"

    def clear(self) -> None:
        self.images_only = False
        for queue in (
            self.submit,
            self.result,
            self.download,
            self.webhook,
            self.task,
            self.ending,
            self.garbled,
            self.output,
            self.output_size,
            self.history,
            self.header,
            self.held,
            self.pricing,
            self.balance,
        ):
            queue.clear()


def take_fault(queue: deque[Any]) -> Any:
    try:
        return queue.popleft()
    except IndexError:
        return None


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    status: int
    at: float


@dataclass
class Task:
    id: str
    model: str
    input: dict[str, Any]
    webhook: str | None
    api_key: str
    status: str = "created"
    outputs: list[str] = field(default_factory=list)
    error: str = ""
    code: int | None = None
    created_at: str = field(default_factory=lambda: iso(datetime.now(UTC)))
    webhooks_sent: int = 0
    webhook_answers: list[int] = field(default_factory=list)  # HTTP status per delivery; 0: no answer
    downloads_completed: int = 0  # outputs served to the last byte
    zip_fetched: bool = False
    loras_fetched: int = 0  # LoRA links an image task downloaded (Hugging Face repo ids are not fetched)
    seed: int | None = None  # an image task's seed: the one asked for, or the one drawn for -1 (or none given)
    hostile_output: str | None = None
    output_size: int | None = None  # overrides the simulator's output size for this task
    ended_at: float | None = None  # wall clock when the task ended and its webhook went out
    garbled_answers: int = 0  # result GETs still to answer with an unparseable body
    header: bytes | None = None  # the output's safetensors header, when a fault chose it
    deleted: bool = False  # WaveSpeed no longer knows it (its API answers 404), though it was created and billed

    def public(self, base_url: str, *, with_input: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "model": self.model,
            **({"input": self.input} if with_input else {}),
            "outputs": self.outputs,
            "urls": {"get": f"{base_url}/api/v3/predictions/{self.id}/result"},
            "has_nsfw_contents": [False] * len(self.outputs),  # one flag per output
            "status": self.status,
            "created_at": self.created_at,
            "error": self.error,
            "timings": {"inference": 0},
        }
        if self.code is not None:
            body["code"] = self.code
        return body


def iso(moment: datetime) -> str:
    """The documented created_at form: ISO 8601, UTC, milliseconds (2026-11-25T09:30:00.123Z)."""
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def price_of(model: str, inputs: Any) -> float | None:
    """What a task of `model` with `inputs` costs in USD (None: a model the account cannot price)."""
    inputs = inputs if isinstance(inputs, dict) else {}
    if model in IMAGE_PRICES:
        return round(IMAGE_PRICES[model] * image_count(inputs), 4)
    base = BASE_PRICES.get(model)
    if base is None:
        return None
    steps = inputs.get("steps", DEFAULT_STEPS)
    if isinstance(steps, bool) or not isinstance(steps, int):
        steps = DEFAULT_STEPS
    return round(base * steps / 1000, 4)


def image_count(inputs: dict[str, Any]) -> int:
    """How many images an inference body asks for (`num_images`, default 1)."""
    count = inputs.get("num_images", 1)
    return count if isinstance(count, int) and not isinstance(count, bool) and count >= 1 else 1
