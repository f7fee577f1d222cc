"""The simulated WaveSpeed: tasks, rate limits, media downloads, outputs, signed webhooks with retries."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx

from loradrop_local.loopback import LoopbackHTTPServer
from loradrop_local.simulator.http_api import make_handler
from loradrop_local.simulator.images import CONTENT_TYPES, image_format, lora_key, render
from loradrop_local.simulator.media import lora_problem, zip_problem
from loradrop_local.simulator.model import (
    INFERENCE_MODEL,
    Faults,
    RecordedRequest,
    SimulatorConfig,
    Task,
    image_count,
    iso,
    parse_iso,
    price_of,
    take_fault,
)
from loradrop_local.simulator.outputs import safetensors_chunks

MAX_SEED = 2**31 - 1  # a drawn seed fits a signed 32-bit integer, so any client can keep and send it back


class Simulator:
    def __init__(self, config: SimulatorConfig | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config or SimulatorConfig()
        self.faults = Faults()
        self.requests: list[RecordedRequest] = []
        self.tasks: dict[str, Task] = {}
        self._epoch = time.monotonic()
        self._window_starts: dict[int, int] = {}  # the current minute window → starts in it
        self.start_times: list[float] = []  # seconds after the simulator started, of every task start
        self.rate_limited = 0  # POSTs refused with a 429 for the start limit
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._releases = 0  # a held task goes on once `release()` has been called after it was created
        self._server = LoopbackHTTPServer((host, port), make_handler(self))
        self._thread: threading.Thread | None = None
        self._http = httpx.Client(timeout=self.config.webhook_timeout)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Simulator:
        self._thread = threading.Thread(target=self._server.serve_forever, name="wavespeed-sim", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._http.close()

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----- for tests -----
    def submissions(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == "POST" and r.path.startswith("/api/v3/wavespeed-ai/")]

    def add_task(
        self,
        task_id: str,
        *,
        status: str = "completed",
        created_at: datetime | None = None,
        data_url: str | None = None,
        model: str = "wavespeed-ai/flux-dev-lora-trainer",
    ) -> Task:
        """A task another tool made on the same account (the web UI, another app on the key): it shows in the
        history and answers GETs, but sends loradrop no webhook."""
        task = Task(
            id=task_id,
            model=model,
            input={"data": data_url} if data_url else {},
            webhook=None,
            api_key=self.config.api_key,
            status=status,
        )
        if created_at is not None:
            task.created_at = iso(created_at)
        if status == "completed":
            task.outputs = self.output_urls(task)
        with self._lock:
            self.tasks[task.id] = task
        return task

    def forget(self, task_id: str) -> None:
        """WaveSpeed deletes a task (its data is kept about 7 days): its API answers 404 for it from now on,
        and its history leaves it out; it still counts as created (and billed)."""
        with self._lock:
            if task_id in self.tasks:
                self.tasks[task_id].deleted = True

    def release(self) -> None:
        """Let the tasks held so far (faults.held) finish; tasks held later wait for the next release."""
        self._releases += 1

    def output_size(self, task_id: str) -> int:
        task = self.tasks.get(task_id)
        return task.output_size if task is not None and task.output_size else self.config.output_size

    def add_completed_task(self, task_id: str, output_size: int) -> Task:
        """A finished task with an output of the given size (benchmarks serve weights this way)."""
        task = Task(
            id=task_id,
            model="wavespeed-ai/flux-dev-lora-trainer",
            input={},
            webhook=None,
            api_key=self.config.api_key,
            status="completed",
            output_size=output_size,
        )
        task.outputs = self.output_urls(task)
        self.tasks[task.id] = task
        return task

    def output_chunks(self, task_id: str) -> tuple[int, Any]:
        """The output this task serves, as (size, chunk iterator factory)."""
        task = self.tasks.get(task_id)
        header = task.header if task is not None else None
        return safetensors_chunks(task_id, self.output_size(task_id), self.config.lora_rank, header)

    def expected_output(self, task_id: str) -> tuple[int, str]:
        """Size and SHA-256 of the output this task serves."""
        size, chunks = self.output_chunks(task_id)
        digest = hashlib.sha256()
        for chunk in chunks():
            digest.update(chunk)
        return size, digest.hexdigest()

    def output_names(self, task: Task) -> list[str]:
        """The file names under /outputs/<task id>/ a completed task lists: its weights, or its images."""
        if task.model != INFERENCE_MODEL:
            return [f"lora-{task.id[:8]}.safetensors"]
        return [f"{index}.{image_format(task.input)}" for index in range(image_count(task.input))]

    def output_urls(self, task: Task) -> list[str]:
        return [f"{self.url}/outputs/{task.id}/{name}" for name in self.output_names(task)]

    def image(self, task_id: str, index: int) -> bytes:
        """Image `index` of an image task, as its output URL serves it."""
        task = self.tasks[task_id]
        prompt = str(task.input.get("prompt", ""))
        return render(prompt, task.seed or 0, lora_key(task.input), index, image_format(task.input))

    def expected_image(self, task_id: str, index: int = 0) -> tuple[int, str]:
        """Size and SHA-256 of image `index` of an image task."""
        image = self.image(task_id, index)
        return len(image), hashlib.sha256(image).hexdigest()

    def output_file(self, task_id: str, name: str) -> tuple[int, Any, str] | None:
        """What GET /outputs/<task id>/<name> serves, as (size, chunk iterator factory, content type); None:
        no such image. A training task serves its weights under any name (benchmarks pick their own)."""
        task = self.tasks.get(task_id)
        if task is None or task.model != INFERENCE_MODEL:
            size, chunks = self.output_chunks(task_id)
            return size, chunks, "application/octet-stream"
        names = self.output_names(task)
        if name not in names:
            return None
        image = self.image(task_id, names.index(name))
        return len(image), lambda: iter([image]), CONTENT_TYPES[image_format(task.input)]

    def sign(self, webhook_id: str, timestamp: str, body: bytes, secret: str | None = None) -> str:
        key = (secret or self.config.webhook_secret).removeprefix("whsec_").encode()
        mac = hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256)
        return f"v3,{mac.hexdigest()}"

    def history(self, query: dict[str, Any], api_key: str) -> tuple[int, dict[str, Any] | str]:
        """POST /api/v3/predictions: the documented filters and paging; items carry no `input`."""
        page, size = query.get("page"), query.get("page_size")
        if not isinstance(page, int) or isinstance(page, bool) or page < 1:
            return 400, "page is required and must be at least 1"
        if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= 100:
            return 400, "page_size is required and must be between 1 and 100"
        if query.get("status") not in (None, "completed", "failed", "processing"):
            return 400, "status must be completed, failed or processing"
        bounds = {}
        for name in ("created_after", "created_before"):
            if query.get(name) is not None:
                try:
                    bounds[name] = parse_iso(str(query[name]))
                except ValueError:
                    return 400, f"{name} must be an ISO 8601 time"
        with self._lock:
            tasks = [t for t in self.tasks.values() if t.api_key == api_key and not t.deleted]
        week_ago = datetime.now(UTC).timestamp() - 7 * 86400
        chosen = [
            t
            for t in tasks
            if (query.get("model") in (None, t.model))
            and (query.get("status") in (None, t.status))
            and parse_iso(t.created_at).timestamp() >= week_ago
            and ("created_after" not in bounds or parse_iso(t.created_at) >= bounds["created_after"])
            and ("created_before" not in bounds or parse_iso(t.created_at) <= bounds["created_before"])
        ]
        chosen.sort(key=lambda t: t.created_at, reverse=True)
        size = min(size, self.config.history_page_cap)
        items = [t.public(self.url, with_input=False) for t in chosen[(page - 1) * size : page * size]]
        answer: dict[str, Any] = {"page": page, "items": items}
        if self.config.history_total:
            answer["total"] = len(chosen)
        return 200, answer

    # ----- behaviour -----
    def start_refused(self) -> bool:
        """Whether WaveSpeed's start limit refuses a task start now (counted in `rate_limited`); otherwise the
        start is counted. The limit "resets each minute": starts are counted per fixed minute window."""
        limit = self.config.starts_per_minute
        now = time.monotonic()
        with self._lock:
            window = int((now - self._epoch) // self.config.minute_seconds)
            if limit is not None and self._window_starts.get(window, 0) >= limit:
                self.rate_limited += 1
                return True
            self._window_starts = {window: self._window_starts.get(window, 0) + 1}
            self.start_times.append(now - self._epoch)
            return False

    def create_task(self, model: str, body: dict[str, Any], webhook: str | None, api_key: str) -> Task | None:
        """A task, paid from the balance; None when the balance cannot pay for it (nothing is created)."""
        price = price_of(f"wavespeed-ai/{model}", body) or 0.0
        with self._lock:
            if self.config.balance < price:
                return None
            self.config.balance -= price
        task = Task(id=uuid.uuid4().hex, model=f"wavespeed-ai/{model}", input=body, webhook=webhook, api_key=api_key)
        if task.model == INFERENCE_MODEL:
            # -1 (or no seed) asks for a random one: drawn here and drawn into the images; the task's `input`
            # stays the body as submitted, as the docs say webhooks carry it.
            asked = body.get("seed", -1)
            task.seed = random.randint(0, MAX_SEED) if asked == -1 else asked
        takes = self.faults.takes(task.model)
        failure = take_fault(self.faults.task) if takes else None
        ending = take_fault(self.faults.ending) if takes else None
        if ending is not None:
            failure = (None, ending)
        webhook_fault = take_fault(self.faults.webhook) if takes else None
        task.hostile_output = take_fault(self.faults.output)
        task.garbled_answers = take_fault(self.faults.garbled) or 0
        task.output_size = take_fault(self.faults.output_size)
        task.header = take_fault(self.faults.header)
        held = take_fault(self.faults.held)
        if held and held > 1:
            self.faults.held.appendleft(held - 1)
        with self._lock:
            self.tasks[task.id] = task
        hold = self._releases if held else None
        threading.Thread(target=self._run_task, args=(task, failure, webhook_fault, hold), daemon=True).start()
        return task

    def _run_task(
        self, task: Task, failure: tuple[int | None, str] | None, webhook_fault: str | None, hold: int | None = None
    ) -> None:
        if webhook_fault == "early":  # a webhook for a task that has barely started
            self._deliver(task, None, snapshot=task.public(self.url) | {"status": "completed"})
            webhook_fault = None
        if self._stopping.wait(self.config.processing_after):
            return
        task.status = "processing"
        problem = self._fetch_media(task)
        if self._stopping.wait(self.config.train_seconds):
            return
        while hold is not None and self._releases == hold:  # held: processing until the next release()
            if self._stopping.wait(0.1):
                return
        if problem is not None:
            task.status, task.code, task.error = "failed", problem[0], problem[1]
        elif failure is not None and failure[0] is None:  # cancelled, timeout or deleted
            task.status, task.error = failure[1], f"task {failure[1]}"
        elif failure is not None:  # "{input}" in the message echoes the request, as some errors do
            message = failure[1].replace("{input}", json.dumps(task.input))
            task.status, task.code, task.error = "failed", failure[0], message
        else:
            task.outputs = [task.hostile_output] if task.hostile_output else self.output_urls(task)
            task.status = "completed"
        task.ended_at = time.time()
        self._deliver(task, webhook_fault)

    def _fetch_media(self, task: Task) -> tuple[int, str] | None:
        """Download what the task needs as WaveSpeed would: the training ZIP, or an image task's LoRAs."""
        if task.model != INFERENCE_MODEL:
            problem = zip_problem(self._http, task.input.get("data", ""))
            task.zip_fetched = problem is None
            return problem
        problem, task.loras_fetched = lora_problem(self._http, [path for path, _ in lora_key(task.input)])
        return problem

    def _deliver(self, task: Task, fault: str | None, snapshot: dict[str, Any] | None = None) -> None:
        if not task.webhook or fault == "drop" or self._stopping.is_set():
            return
        body = snapshot or task.public(self.url)
        if fault and fault.startswith("lie:"):
            body = body | {"outputs": [fault[4:]], "status": "completed"}
        copies = int(fault.split(":", 1)[1]) if fault and fault.startswith("duplicate:") else 1
        threads = [threading.Thread(target=self._post_webhook, args=(task, body), daemon=True) for _ in range(copies)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if fault == "out_of_order":  # an older state arrives after the final one
            self._post_webhook(task, body | {"status": "processing", "outputs": []})

    def _post_webhook(self, task: Task, body: dict[str, Any]) -> None:
        raw = json.dumps(body).encode()
        delay = self.config.webhook_backoff
        for _ in range(1 + self.config.webhook_retries):
            if self._stopping.is_set():
                return
            timestamp = str(int(time.time()))
            headers = {
                "content-type": "application/json",
                "webhook-id": task.id,
                "webhook-timestamp": timestamp,
                "webhook-signature": self.sign(task.id, timestamp, raw),
            }
            try:
                answer = self._http.post(task.webhook or "", content=raw, headers=headers)
                task.webhooks_sent += 1
                task.webhook_answers.append(answer.status_code)
                if 200 <= answer.status_code < 300:
                    return
            except httpx.HTTPError:
                task.webhooks_sent += 1
                task.webhook_answers.append(0)
            if self._stopping.wait(delay):
                return
            delay *= 2
