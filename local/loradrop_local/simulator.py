"""A WaveSpeed stand-in: a real HTTP server that follows shared/wavespeed-api.md.

It authenticates with a Bearer key, validates the trainer's parameters against the documented
ranges, rate-limits task starts, downloads the ZIP from the `data` URL like WaveSpeed would,
moves tasks created → processing → completed|failed, serves `.safetensors` outputs (streamed,
never held in memory), and delivers v3-signed webhooks with retries. Faults are injected through
`Simulator.faults`; every request is recorded in `Simulator.requests` for tests to assert on.

Its signing code is deliberately its own (not loradrop's), so the two check each other.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import random
import socket
import struct
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

TRAINER_MODELS = ("wavespeed-ai/flux-dev-lora-trainer", "wavespeed-ai/flux-dev-lora-trainer-turbo")
_BLOCK = 1024 * 1024


@dataclass
class SimulatorConfig:
    api_key: str = "sim-api-key"
    webhook_secret: str = "whsec_simulated-webhook-secret"
    starts_per_minute: int | None = None  # None: no rate limit
    minute_seconds: float = 60.0  # shorten "a minute" for tests
    processing_after: float = 0.05  # created → processing (the ZIP is fetched then)
    train_seconds: float = 0.2  # processing → completed
    output_size: int = 1024 * 1024
    lora_rank: int = 16
    webhook_retries: int = 3
    webhook_backoff: float = 0.2  # doubles on each retry
    webhook_timeout: float = 5.0
    # Whether GET .../result carries the task's `input` (the docs mark it optional; webhooks always do).
    result_has_input: bool = True


@dataclass
class Faults:
    """Queues of faults, each consumed by the next matching request or task.

    submit: "429", "500", "503", "slow:<seconds>", "drop_before_create", "drop_after_create",
            "502_after_create", "504_after_create" (a gateway's error after the task was created),
            "400_echo" (a refusal quoting the request, presigned link and all)
    result: "500", "429", "drop", "slow:<seconds>"
    history: "500", "drop" — the next prediction-history requests fail
    download: "truncate", "vanish", "slow:<seconds>", "reset", "redirect:<url>"
    webhook: "drop", "duplicate:<n>", "out_of_order", "lie:<url>", "early"
    task: (code, message) pairs — the next tasks fail with that WaveSpeed code ("{input}" in the message
          echoes the task's input)
    ending: "cancelled", "timeout", "deleted" — the next tasks end in that status instead
    garbled: N — the next task's first N result answers do not parse (`"status": null`, no outputs list)
    output: URLs — the next completed tasks list this URL as their output (hostile WaveSpeed data)
    output_size: bytes — the next task's output is this big
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

    def clear(self) -> None:
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
        ):
            queue.clear()


def _take(queue: deque[Any]) -> Any:
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
    created_at: str = field(default_factory=lambda: _iso(datetime.now(UTC)))
    webhooks_sent: int = 0
    webhook_answers: list[int] = field(default_factory=list)  # HTTP status per delivery; 0: no answer
    downloads_completed: int = 0  # outputs served to the last byte
    zip_fetched: bool = False
    hostile_output: str | None = None
    output_size: int | None = None  # overrides the simulator's output size for this task
    ended_at: float | None = None  # wall clock when the task ended and its webhook went out
    garbled_answers: int = 0  # result GETs still to answer with an unparseable body

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


def _iso(moment: datetime) -> str:
    """The documented created_at form: ISO 8601, UTC, milliseconds (2026-11-25T09:30:00.123Z)."""
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


MISSING_PARAMETER, INVALID_PARAMETER = 1400, 1401


def _validation_error(body: Any) -> tuple[int, str] | None:
    """WaveSpeed's documented parameter rules, with its codes (1400 missing, 1401 invalid); the
    message mimics its 400 answers. Fields it does not know are ignored, as WaveSpeed does."""
    if not isinstance(body, dict):
        return INVALID_PARAMETER, "request body must be a JSON object"
    data = body.get("data")
    if data is None or data == "":
        return MISSING_PARAMETER, "data is required"
    if not isinstance(data, str):
        return INVALID_PARAMETER, "data must be a URL"
    rules: dict[str, tuple[Any, float, float]] = {
        "steps": (int, 1000, 10000),
        "learning_rate": ((int, float), 0, 1),
        "lora_rank": (int, 1, 64),
    }
    for name, (kind, low, high) in rules.items():
        if name in body:
            value = body[name]
            if isinstance(value, bool) or not isinstance(value, kind) or not low <= float(value) <= high:
                return INVALID_PARAMETER, f"{name} must be between {low} and {high}"
    if "trigger_word" in body and not isinstance(body["trigger_word"], str):
        return INVALID_PARAMETER, "trigger_word must be a string"
    return None


def safetensors_chunks(task_id: str, size: int, rank: int) -> tuple[int, Any]:
    """A deterministic `.safetensors` file of exactly `size` bytes, as (size, chunk iterator factory)."""
    names = [
        f"lora_unet_double_blocks_{block}_img_attn_{part}.lora_{direction}.weight"
        for block in range(19)
        for part in ("qkv", "proj")
        for direction in ("down", "up")
    ]
    tensors: dict[str, Any] = {"__metadata__": {"format": "pt", "ss_network_dim": str(rank), "task": task_id}}
    shapes = [(name, [rank, 3072] if name.endswith("down.weight") else [3072, rank]) for name in names]
    budget = max(0, size - 8 - 4096)  # leave room for the header
    offset = 0
    for name, shape in shapes:
        length = shape[0] * shape[1] * 2
        if offset + length > budget:
            break
        tensors[name] = {"dtype": "F16", "shape": shape, "data_offsets": [offset, offset + length]}
        offset += length

    def header_for(padding_tensor: int) -> bytes:
        full = dict(tensors)
        full["lora_te_padding"] = {
            "dtype": "U8",
            "shape": [padding_tensor],
            "data_offsets": [offset, offset + padding_tensor],
        }
        raw = json.dumps(full, separators=(",", ":")).encode()
        return raw + b" " * (-len(raw) % 8)

    header = header_for(0)
    padding = size - 8 - len(header) - offset
    for _ in range(3):  # the header grows with the padding's digits; settle it
        header = header_for(max(0, padding))
        padding = size - 8 - len(header) - offset
    if padding < 0:
        raise ValueError(f"output size {size} is too small for a safetensors file")
    data_size = offset + padding
    prefix = struct.pack("<Q", len(header)) + header
    block = random.Random(task_id).randbytes(_BLOCK)  # test data, not security

    def chunks() -> Any:
        yield prefix
        remaining = data_size
        while remaining > 0:
            piece = block if remaining >= _BLOCK else block[:remaining]
            remaining -= len(piece)
            yield piece

    return len(prefix) + data_size, chunks


class Simulator:
    def __init__(self, config: SimulatorConfig | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config or SimulatorConfig()
        self.faults = Faults()
        self.requests: list[RecordedRequest] = []
        self.tasks: dict[str, Task] = {}
        self._starts: deque[float] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = LoopbackHTTPServer((host, port), _make_handler(self))
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
        task.outputs = [f"{self.url}/outputs/{task.id}/lora-{task.id[:8]}.safetensors"]
        self.tasks[task.id] = task
        return task

    def expected_output(self, task_id: str) -> tuple[int, str]:
        """Size and SHA-256 of the output this task serves."""
        size, chunks = safetensors_chunks(task_id, self.output_size(task_id), self.config.lora_rank)
        digest = hashlib.sha256()
        for chunk in chunks():
            digest.update(chunk)
        return size, digest.hexdigest()

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
                    bounds[name] = _parse_iso(str(query[name]))
                except ValueError:
                    return 400, f"{name} must be an ISO 8601 time"
        with self._lock:
            tasks = [t for t in self.tasks.values() if t.api_key == api_key]
        week_ago = datetime.now(UTC).timestamp() - 7 * 86400
        chosen = [
            t
            for t in tasks
            if (query.get("model") in (None, t.model))
            and (query.get("status") in (None, t.status))
            and _parse_iso(t.created_at).timestamp() >= week_ago
            and ("created_after" not in bounds or _parse_iso(t.created_at) >= bounds["created_after"])
            and ("created_before" not in bounds or _parse_iso(t.created_at) <= bounds["created_before"])
        ]
        chosen.sort(key=lambda t: t.created_at, reverse=True)
        items = [t.public(self.url, with_input=False) for t in chosen[(page - 1) * size : page * size]]
        return 200, {"page": page, "total": len(chosen), "items": items}

    # ----- behaviour -----
    def _rate_limited(self) -> bool:
        limit = self.config.starts_per_minute
        if limit is None:
            return False
        now = time.monotonic()
        with self._lock:
            while self._starts and now - self._starts[0] >= self.config.minute_seconds:
                self._starts.popleft()
            if len(self._starts) >= limit:
                return True
            self._starts.append(now)
            return False

    def create_task(self, model: str, body: dict[str, Any], webhook: str | None, api_key: str) -> Task:
        task = Task(id=uuid.uuid4().hex, model=f"wavespeed-ai/{model}", input=body, webhook=webhook, api_key=api_key)
        failure = _take(self.faults.task)
        ending = _take(self.faults.ending)
        if ending is not None:
            failure = (None, ending)
        webhook_fault = _take(self.faults.webhook)
        task.hostile_output = _take(self.faults.output)
        task.garbled_answers = _take(self.faults.garbled) or 0
        task.output_size = _take(self.faults.output_size)
        with self._lock:
            self.tasks[task.id] = task
        threading.Thread(target=self._run_task, args=(task, failure, webhook_fault), daemon=True).start()
        return task

    def _run_task(self, task: Task, failure: tuple[int | None, str] | None, webhook_fault: str | None) -> None:
        if webhook_fault == "early":  # a webhook for a task that has barely started
            self._deliver(task, None, snapshot=task.public(self.url) | {"status": "completed"})
            webhook_fault = None
        if self._stopping.wait(self.config.processing_after):
            return
        task.status = "processing"
        problem = self._fetch_zip(task.input.get("data", ""))
        task.zip_fetched = problem is None
        if self._stopping.wait(self.config.train_seconds):
            return
        if problem is not None:
            task.status, task.code, task.error = "failed", problem[0], problem[1]
        elif failure is not None and failure[0] is None:  # cancelled, timeout or deleted
            task.status, task.error = failure[1], f"task {failure[1]}"
        elif failure is not None:  # "{input}" in the message echoes the request, as some errors do
            message = failure[1].replace("{input}", json.dumps(task.input))
            task.status, task.code, task.error = "failed", failure[0], message
        else:
            task.outputs = [task.hostile_output or f"{self.url}/outputs/{task.id}/lora-{task.id[:8]}.safetensors"]
            task.status = "completed"
        task.ended_at = time.time()
        self._deliver(task, webhook_fault)

    def _fetch_zip(self, url: str) -> tuple[int, str] | None:
        """Download the training data as WaveSpeed would; a link that does not work fails with 1402."""
        query = parse_qs(urlsplit(url).query)
        if query.get("X-Amz-Algorithm") == ["AWS4-HMAC-SHA256"]:
            try:
                signed = datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
                expires = int(query["X-Amz-Expires"][0])
            except (KeyError, ValueError):
                return 1402, "media URL is not a valid presigned URL"
            if time.time() > signed.timestamp() + expires:
                return 1402, "media URL expired"
        elif "Signature" in query or "X-Amz-Signature" in query:
            return 1402, "media URL is not signed with SigV4"
        try:
            with self._http.stream("GET", url) as answer:
                if answer.status_code != 200:
                    return 1402, f"media URL not reachable (HTTP {answer.status_code})"
                head = next(answer.iter_bytes(4), b"")
        except httpx.HTTPError as err:
            return 1402, f"media URL not reachable: {err}"
        if not head.startswith(b"PK"):
            return 1401, "data is not a ZIP archive"
        return None

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


class LoopbackHTTPServer(ThreadingHTTPServer):
    """Listens with a real server's backlog (the standard library's 5 drops connections under bursts)."""

    request_queue_size = 128
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (timeouts are part of the tests) is not worth a traceback.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _make_handler(sim: Simulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "wavespeed-sim"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

        # ----- plumbing -----
        def _body(self) -> Any:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                return json.loads(raw) if raw else None
            except ValueError:
                return raw.decode("utf-8", "replace")

        def _send(self, status: int, payload: Any, body: Any = None) -> None:
            self._send_raw(status, json.dumps(payload).encode(), "application/json", body)

        def _send_raw(self, status: int, raw: bytes, content_type: str, body: Any = None) -> None:
            parts = urlsplit(self.path)
            sim.requests.append(
                RecordedRequest(self.command, parts.path, parse_qs(parts.query), body, status, time.time())
            )
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def _ok(self, data: Any, body: Any = None) -> None:
            self._send(200, {"code": 200, "message": "success", "data": data}, body)

        def _error(self, status: int, message: str, code: int | None = None, body: Any = None) -> None:
            payload: dict[str, Any] = {"message": message}
            if code is not None:
                payload["error_code"] = code
            self._send(status, payload, body)

        def _drop(self, body: Any = None) -> None:
            parts = urlsplit(self.path)
            sim.requests.append(RecordedRequest(self.command, parts.path, parse_qs(parts.query), body, 0, time.time()))
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

        def _api_key(self) -> str | None:
            header = self.headers.get("authorization", "")
            key = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
            return key if key and hmac.compare_digest(key, sim.config.api_key) else None

        # ----- routes -----
        def do_POST(self) -> None:
            body = self._body()
            path = urlsplit(self.path).path
            if path == "/api/v3/predictions":
                return self._history(body)
            if not path.startswith("/api/v3/wavespeed-ai/"):
                return self._error(404, "not found", body=body)
            key = self._api_key()
            if key is None:
                return self._error(401, "Unauthorized: invalid API key", body=body)
            model = path.removeprefix("/api/v3/wavespeed-ai/")
            if f"wavespeed-ai/{model}" not in TRAINER_MODELS:
                return self._error(404, f"model wavespeed-ai/{model} not found", body=body)
            fault = _take(sim.faults.submit) or ""
            if fault.startswith("slow:"):
                time.sleep(float(fault[5:]))
            if fault in ("429", "500", "503"):
                return self._error(int(fault), "simulated failure", body=body)
            if fault == "400_echo":  # a refusal that quotes the request back
                return self._error(400, f"invalid request: {json.dumps(body)}", 1401, body=body)
            if fault == "drop_before_create":
                return self._drop(body)
            problem = _validation_error(body)
            if problem is not None:
                return self._error(400, problem[1], problem[0], body=body)
            if sim._rate_limited():
                return self._error(429, "Too many requests: task start rate limit exceeded", body=body)
            # The query parameter is the documented form; some docs show `webhook_url` in the body.
            webhook = parse_qs(urlsplit(self.path).query).get("webhook", [None])[0] or body.get("webhook_url")
            task = sim.create_task(model, body, webhook, key)
            if fault == "drop_after_create":
                return self._drop(body)
            if fault in ("502_after_create", "504_after_create"):  # a gateway's page, not WaveSpeed's JSON
                return self._send_raw(int(fault[:3]), b"<html><body>Bad Gateway</body></html>", "text/html", body)
            if body.get("enable_sync_mode") is True:  # the answer waits for the task to end (the SDK's sync mode)
                deadline = time.monotonic() + 60
                while task.status in ("created", "processing") and time.monotonic() < deadline:
                    time.sleep(0.02)
            return self._ok(task.public(sim.url), body)

        def _history(self, body: Any) -> None:
            key = self._api_key()
            if key is None:
                return self._error(401, "Unauthorized: invalid API key", body=body)
            fault = _take(sim.faults.history) or ""
            if fault == "500":
                return self._error(500, "simulated failure", body=body)
            if fault == "drop":
                return self._drop(body)
            status, answer = sim.history(body if isinstance(body, dict) else {}, key)
            if isinstance(answer, str):
                return self._error(status, answer, 1401, body=body)
            return self._ok(answer, body)

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            if path.startswith("/outputs/"):
                return self._output(path)
            if self._api_key() is None:
                return self._error(401, "Unauthorized: invalid API key")
            if path == "/api/v3/webhook/secret":
                return self._ok({"secret": sim.config.webhook_secret})
            if path.startswith("/api/v3/predictions/") and path.endswith("/result"):
                fault = _take(sim.faults.result) or ""
                if fault.startswith("slow:"):
                    time.sleep(float(fault[5:]))
                if fault in ("500", "429"):
                    return self._error(int(fault), "simulated failure")
                if fault == "drop":
                    return self._drop()
                task_id = path.split("/")[4]
                task = sim.tasks.get(task_id)
                if task is None or task.api_key != sim.config.api_key:
                    return self._error(404, "prediction not found")
                if task.garbled_answers > 0:
                    task.garbled_answers -= 1
                    return self._ok({"id": task.id, "status": None, "outputs": "n/a", "code": "?"})
                return self._ok(task.public(sim.url, with_input=sim.config.result_has_input))
            return self._error(404, "not found")

        def _output(self, path: str) -> None:
            parts = path.split("/")
            task = sim.tasks.get(parts[2]) if len(parts) == 4 else None
            fault = _take(sim.faults.download) or ""
            if task is None or task.status != "completed" or fault == "vanish":
                return self._error(404, "output not found")
            if fault.startswith("redirect:"):
                sim.requests.append(RecordedRequest("GET", path, {}, None, 302, time.time()))
                self.send_response(302)
                self.send_header("location", fault[9:])
                self.send_header("content-length", "0")
                self.end_headers()
                return
            size, chunks = safetensors_chunks(task.id, sim.output_size(task.id), sim.config.lora_rank)
            sim.requests.append(RecordedRequest("GET", path, {}, None, 200, time.time()))
            self.send_response(HTTPStatus.OK)
            self.send_header("content-type", "application/octet-stream")
            self.send_header("content-length", str(size))
            self.end_headers()
            sent = 0
            try:
                for chunk in chunks():
                    if fault.startswith("slow:"):
                        time.sleep(float(fault[5:]))
                    if fault in ("truncate", "reset") and sent + len(chunk) > size // 2:
                        self.wfile.write(chunk[: size // 2 - sent])
                        self.wfile.flush()
                        if fault == "reset":
                            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    self.wfile.write(chunk)
                    sent += len(chunk)
                self.wfile.flush()
                task.downloads_completed += 1
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

    return Handler


def main(argv: list[str] | None = None) -> int:
    """Serve the simulator on its own (benchmarks run it out of process)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m loradrop_local.simulator", description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--completed-task",
        action="append",
        default=[],
        metavar="ID:BYTES",
        help="a finished task serving an output of BYTES bytes",
    )
    args = parser.parse_args(argv)
    sim = Simulator(port=args.port).start()
    for spec in args.completed_task:
        task_id, size = spec.split(":")
        sim.add_completed_task(task_id, int(size))
    print(sim.url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
