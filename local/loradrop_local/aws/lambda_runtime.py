"""A Lambda-like runtime: each function runs in worker processes of its own, started like execution
environments (the function's own environment and credentials, its own imports and module state), one
invocation at a time per worker, reused while warm, replaced after a crash or a timeout."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

# Lambda allows 10 s for INIT; a busy 2-core machine starting several workers at once needs longer.
INIT_TIMEOUT_SECONDS = 60.0
# Variables a worker inherits from the machine: what runs Python, and coverage's subprocess hook.
INHERITED = ("PATH", "LANG", "LC_ALL", "TZ", "COVERAGE_PROCESS_START", "COVERAGE_PROCESS_CONFIG")


class FunctionError(Exception):
    """An invocation failed as Lambda reports it: `error_type` is the handler's exception type, or
    Lambda's own (`Sandbox.Timedout`, `Runtime.ExitError`, `Runtime.ImportModuleError`)."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message


@dataclass(frozen=True)
class FunctionConfig:
    logical_id: str
    name: str
    arn: str
    handler: str
    timeout: float
    memory_mb: int
    environment: dict[str, str]  # the function's variables plus its credentials and AWS_* runtime ones
    concurrency: int


class Worker:
    """One execution environment (one process)."""

    def __init__(self, config: FunctionConfig, tag: str, log: IO[str] | None) -> None:
        self.config = config
        self.tag = tag
        read_fd, write_fd = os.pipe()
        environment = {name: os.environ[name] for name in INHERITED if name in os.environ}
        environment |= config.environment | {"PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"}
        # The worker names itself in its AWS calls' User-Agent (`app/<tag>`), so the moto front knows who
        # sent a request (botocore reads this variable; the function's code does not know of it).
        environment["AWS_SDK_UA_APP_ID"] = tag
        self.process = subprocess.Popen(
            [sys.executable, "-m", "loradrop_local.aws.lambda_worker", config.handler, str(write_fd)],
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT if log is not None else None,
            env=environment,
            pass_fds=(write_fd,),
            text=True,
        )
        os.close(write_fd)
        self._answers = os.fdopen(read_fd, "r", encoding="utf-8")
        ready = self._read_answer(INIT_TIMEOUT_SECONDS, "Runtime.ImportModuleError")
        self.init_ms = float(ready.get("init_ms", 0))

    def invoke(self, event: dict[str, Any], timeout: float) -> Any:
        request = {
            "event": event,
            "timeout_ms": int(timeout * 1000),
            "request_id": str(uuid.uuid4()),
            "function_arn": self.config.arn,
        }
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
        except OSError as err:
            raise FunctionError("Runtime.ExitError", f"the worker had exited ({err})") from err
        answer = self._read_answer(timeout + 0.25, "Sandbox.Timedout")
        if "errorType" in answer:
            raise FunctionError(str(answer["errorType"]), str(answer.get("errorMessage", "")))
        return answer.get("result")

    def _read_answer(self, timeout: float, on_timeout: str) -> dict[str, Any]:
        readable, _, _ = select.select([self._answers], [], [], timeout)
        if not readable:
            self.kill()
            raise FunctionError(on_timeout, f"Task timed out after {timeout:.2f} seconds")
        line = self._answers.readline()
        if not line:
            code = self.process.wait(timeout=5)
            raise FunctionError("Runtime.ExitError", f"the worker exited with status {code}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()

    def close(self) -> None:
        """End the worker as Lambda retires an idle environment: it exits normally (atexit hooks run)."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._answers.close()


class FunctionRuntime:
    """The workers of one function: at most `concurrency` at once; an invocation beyond that waits for
    one to free up (Lambda would throttle; the local callers all retry, so waiting is kinder)."""

    def __init__(self, config: FunctionConfig, log_file: Path | None) -> None:
        self.config = config
        self._log = log_file.open("a", encoding="utf-8") if log_file is not None else None
        self._idle: list[Worker] = []
        self._running = 0
        self._changed = threading.Condition()
        self._closed = False
        self._busy: dict[str, Worker] = {}
        self._serial = 0
        self.cold_starts = 0
        self.invocations = 0
        self.durations: list[float] = []  # seconds per invocation, cold starts included

    def invoke(self, event: dict[str, Any], timeout: float | None = None) -> Any:
        started = time.monotonic()
        try:
            return self._invoke(event, timeout)
        finally:
            self.durations.append(time.monotonic() - started)

    def _invoke(self, event: dict[str, Any], timeout: float | None) -> Any:
        worker = self._acquire()
        try:
            result = worker.invoke(event, timeout or self.config.timeout)
        except FunctionError as err:
            if err.error_type in ("Sandbox.Timedout", "Runtime.ExitError"):
                worker.kill()  # as Lambda does: the environment is not reused
                self._release(None, worker.tag)
            else:
                self._release(worker)
            raise
        except BaseException:
            worker.kill()
            self._release(None, worker.tag)
            raise
        self._release(worker)
        return result

    def _acquire(self) -> Worker:
        with self._changed:
            self.invocations += 1
            while not self._idle and self._running >= self.config.concurrency:
                self._changed.wait()
            if self._closed:
                raise FunctionError("Runtime.ExitError", "the local stack is stopping")
            self._running += 1
            if self._idle:
                worker = self._idle.pop()
                self._busy[worker.tag] = worker
                return worker
            self.cold_starts += 1
            self._serial += 1
            tag = f"{self.config.logical_id}.{self._serial}"
        try:
            worker = Worker(self.config, tag, self._log)
        except BaseException:
            self._release(None)
            raise
        with self._changed:
            self._busy[tag] = worker
        return worker

    def kill_worker(self, tag: str) -> None:
        """End a busy worker at once (SIGKILL), as a crash would; its invocation fails with
        Runtime.ExitError and the worker is not reused."""
        with self._changed:
            worker = self._busy.get(tag)
        if worker is not None:
            worker.process.kill()

    def _release(self, worker: Worker | None, tag: str | None = None) -> None:
        with self._changed:
            self._running -= 1
            self._busy.pop(worker.tag if worker else tag or "", None)
            if worker is not None:
                if self._closed:
                    worker.close()
                else:
                    self._idle.append(worker)
            self._changed.notify()

    def close(self) -> None:
        with self._changed:
            self._closed = True
            idle, self._idle = self._idle, []
            self._changed.notify_all()
        for worker in idle:
            worker.close()
        deadline = time.monotonic() + 10
        with self._changed:
            while self._running and time.monotonic() < deadline:
                self._changed.wait(0.2)
        if self._log is not None:
            self._log.close()
