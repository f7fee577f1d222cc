"""WaveSpeed's HTTP API as documented (shared/wavespeed-api.md), served for the simulator."""

from __future__ import annotations

import contextlib
import hmac
import json
import socket
import struct
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from loradrop_local.simulator.model import (
    MODELS,
    Faults,
    RecordedRequest,
    SimulatorConfig,
    Task,
    price_of,
    take_fault,
)
from loradrop_local.simulator.validation import validation_error


class SimulatedWaveSpeed(Protocol):
    """What the routes need from the simulator (`server.Simulator`): its account's state and behaviour."""

    config: SimulatorConfig
    faults: Faults
    requests: list[RecordedRequest]
    tasks: dict[str, Task]

    @property
    def url(self) -> str: ...

    def start_refused(self) -> bool: ...

    def create_task(self, model: str, body: dict[str, Any], webhook: str | None, api_key: str) -> Task | None: ...

    def history(self, query: dict[str, Any], api_key: str) -> tuple[int, dict[str, Any] | str]: ...

    def output_file(self, task_id: str, name: str) -> tuple[int, Any, str] | None: ...


class WaveSpeedHandler(BaseHTTPRequestHandler):
    """The documented routes and their faults; `sim` is the simulated account it answers for."""

    sim: SimulatedWaveSpeed
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
        self.sim.requests.append(
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
        self.sim.requests.append(RecordedRequest(self.command, parts.path, parse_qs(parts.query), body, 0, time.time()))
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _api_key(self) -> str | None:
        header = self.headers.get("authorization", "")
        key = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
        return key if key and hmac.compare_digest(key, self.sim.config.api_key) else None

    # ----- routes -----
    def do_POST(self) -> None:
        body = self._body()
        path = urlsplit(self.path).path
        if path == "/api/v3/predictions":
            return self._history(body)
        if path == "/api/v3/model/pricing":
            return self._pricing(body)
        if not path.startswith("/api/v3/wavespeed-ai/"):
            return self._error(404, "not found", body=body)
        key = self._api_key()
        if key is None:
            return self._error(401, "Unauthorized: invalid API key", body=body)
        model = path.removeprefix("/api/v3/wavespeed-ai/")
        if f"wavespeed-ai/{model}" not in MODELS:
            return self._error(404, f"model wavespeed-ai/{model} not found", body=body)
        return self._submit(model, key, body)

    def _submit(self, model: str, key: str, body: Any) -> None:  # noqa: PLR0911 - one answer per submit fault
        """POST a task (training or images): the submit faults, validation, the start limit, then the task."""
        fault = (take_fault(self.sim.faults.submit) if self.sim.faults.takes(model) else None) or ""
        if self.sim.config.submit_latency:
            time.sleep(self.sim.config.submit_latency)
        if fault.startswith("slow:"):
            time.sleep(float(fault[5:]))
        if fault in ("429", "500", "503"):
            return self._error(int(fault), "simulated failure", body=body)
        if fault == "400_echo":  # a refusal that quotes the request back
            return self._error(400, f"invalid request: {json.dumps(body)}", 1401, body=body)
        if fault == "drop_before_create":
            return self._drop(body)
        refused = self.sim.config.lora_urls_refused
        problem = validation_error(f"wavespeed-ai/{model}", body, lora_urls_refused=refused)
        if problem is not None:
            return self._error(400, problem[1], problem[0], body=body)
        if self.sim.start_refused():
            return self._error(429, "Too many requests: task start rate limit exceeded", body=body)
        # The query parameter is the documented form; some docs show `webhook_url` in the body.
        webhook = parse_qs(urlsplit(self.path).query).get("webhook", [None])[0] or body.get("webhook_url")
        task = self.sim.create_task(model, body, webhook, key)
        if task is None:  # WaveSpeed's word on an account problem, before anything is created
            return self._error(403, "Insufficient balance: top up your account to create this task", body=body)
        if fault == "drop_after_create":
            return self._drop(body)
        if fault in ("502_after_create", "504_after_create"):  # a gateway's page, not WaveSpeed's JSON
            return self._send_raw(int(fault[:3]), b"<html><body>Bad Gateway</body></html>", "text/html", body)
        if body.get("enable_sync_mode") is True:  # the answer waits for the task to end (the SDK's sync mode)
            deadline = time.monotonic() + 60
            while task.status in ("created", "processing") and time.monotonic() < deadline:
                time.sleep(0.02)
        return self._ok(task.public(self.sim.url), body)

    def _history(self, body: Any) -> None:
        key = self._api_key()
        if key is None:
            return self._error(401, "Unauthorized: invalid API key", body=body)
        fault = take_fault(self.sim.faults.history) or ""
        if fault == "500":
            return self._error(500, "simulated failure", body=body)
        if fault == "drop":
            return self._drop(body)
        status, answer = self.sim.history(body if isinstance(body, dict) else {}, key)
        if isinstance(answer, str):
            return self._error(status, answer, 1401, body=body)
        return self._ok(answer, body)

    def _pricing(self, body: Any) -> None:
        """The documented pricing endpoint: `{model_id, inputs}` → `{model_id, unit_price, currency}`."""
        if self._api_key() is None:
            return self._error(401, "Unauthorized: invalid API key", body=body)
        fault = take_fault(self.sim.faults.pricing) or ""
        if fault == "500":
            return self._error(500, "simulated failure", body=body)
        if fault == "drop":
            return self._drop(body)
        if fault == "proxy_502":
            return self._send_raw(502, b"<html><body>Bad Gateway</body></html>", "text/html", body)
        model = body.get("model_id") if isinstance(body, dict) else None
        price = price_of(model, body.get("inputs")) if isinstance(model, str) and isinstance(body, dict) else None
        if price is None:
            return self._error(400, f"model {model!r} has no price", 1401, body=body)
        return self._ok({"model_id": model, "unit_price": price, "currency": "USD"}, body)

    def _balance(self, path: str) -> None:
        if path not in self.sim.config.balance_paths:
            return self._error(404, "not found")
        if (take_fault(self.sim.faults.balance) or "") == "500":
            return self._error(500, "simulated failure")
        currency = {"currency": "USD"} if path.endswith("/account/balance") else {}
        return self._ok({"balance": round(self.sim.config.balance, 4)} | currency)

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path.startswith("/outputs/"):
            return self._output(path)
        if self._api_key() is None:
            return self._error(401, "Unauthorized: invalid API key")
        if path == "/api/v3/webhook/secret":
            return self._ok({"secret": self.sim.config.webhook_secret})
        if path in ("/api/v3/balance", "/api/v3/account/balance"):
            return self._balance(path)
        if path.startswith("/api/v3/predictions/") and path.endswith("/result"):
            return self._result(path)
        return self._error(404, "not found")

    def _result(self, path: str) -> None:
        """GET a task's result: the result faults, then the task as WaveSpeed shows it."""
        fault = take_fault(self.sim.faults.result) or ""
        if fault.startswith("slow:"):
            time.sleep(float(fault[5:]))
        if fault in ("500", "429"):
            return self._error(int(fault), "simulated failure")
        if fault == "drop":
            return self._drop()
        if fault == "proxy_404":  # a CDN or proxy in front of WaveSpeed, answering for it
            return self._send_raw(404, b"<html><body>404 Not Found</body></html>", "text/html")
        task_id = path.split("/")[4]
        task = self.sim.tasks.get(task_id)
        if task is None or task.api_key != self.sim.config.api_key or task.deleted:
            return self._error(404, "prediction not found")
        if task.garbled_answers > 0:
            task.garbled_answers -= 1
            return self._ok({"id": task.id, "status": None, "outputs": "n/a", "code": "?"})
        return self._ok(task.public(self.sim.url, with_input=self.sim.config.result_has_input))

    def _output(self, path: str) -> None:
        """GET an output (weights or an image): the download faults, then its bytes."""
        parts = path.split("/")
        task = self.sim.tasks.get(parts[2]) if len(parts) == 4 else None
        fault = take_fault(self.sim.faults.download) or ""
        if task is None or task.status != "completed" or task.deleted or fault == "vanish":
            return self._error(404, "output not found")
        served = self.sim.output_file(task.id, parts[3])
        if served is None:  # a name the task does not list (an image past num_images)
            return self._error(404, "output not found")
        if fault.startswith("redirect:"):
            self.sim.requests.append(RecordedRequest("GET", path, {}, None, 302, time.time()))
            self.send_response(302)
            self.send_header("location", fault[9:])
            self.send_header("content-length", "0")
            self.end_headers()
            return
        size, chunks, content_type = served
        self.sim.requests.append(RecordedRequest("GET", path, {}, None, 200, time.time()))
        self.send_response(HTTPStatus.OK)
        self.send_header("content-type", content_type)
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


def make_handler(sim: SimulatedWaveSpeed) -> type[BaseHTTPRequestHandler]:
    """A handler class for an HTTP server that answers as `sim`."""
    return type("Handler", (WaveSpeedHandler,), {"sim": sim})
