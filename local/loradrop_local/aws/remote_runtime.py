"""Functions run by SAM's own emulator: invocations go to `sam local start-lambda`, which runs what `sam build`
produced in Lambda's container image, as Lambda's pollers would call Lambda (the local stack plays the
pollers: SQS, the table's stream, the schedule)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import EndpointConnectionError

from loradrop_local.aws.lambda_runtime import FunctionConfig, FunctionError

# SAM's emulator may still be starting (its containers are created on first use, under arm64 emulation).
READY_SECONDS = 600.0


class RemoteRuntime:
    """One function behind `sam local start-lambda`; the same surface as FunctionRuntime."""

    def __init__(self, config: FunctionConfig, endpoint: str) -> None:
        self.config = config
        self.invocations = 0
        self.durations: list[float] = []  # seconds per invocation, cold starts included
        self._lock = threading.Lock()  # one invocation at a time: SAM keeps one warm container per function
        self._client = boto3.client(
            "lambda",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",  # SAM's emulator does not check them
            config=Config(read_timeout=max(900.0, config.timeout + 300), retries={"max_attempts": 1}),
        )

    def invoke(self, event: dict[str, Any], timeout: float | None = None) -> Any:
        deadline = time.monotonic() + READY_SECONDS
        with self._lock:
            while True:
                started = time.monotonic()
                try:
                    answer = self._client.invoke(FunctionName=self.config.logical_id, Payload=json.dumps(event))
                    break
                except EndpointConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(1.0)
            self.invocations += 1
            self.durations.append(time.monotonic() - started)
        payload = answer["Payload"].read()
        if not payload:
            # SAM says "No response from invoke container" and answers 200 with nothing when the emulated runtime
            # was not listening yet: the event may never have reached the handler. Every handler answers something,
            # so this is a failed invocation, as Lambda would report one, and the poller delivers the batch again.
            raise FunctionError("NoResponse", "sam local start-lambda gave no response from the function's container")
        result = json.loads(payload)
        if answer.get("FunctionError"):
            error = result if isinstance(result, dict) else {}
            raise FunctionError(str(error.get("errorType", "Unhandled")), str(error.get("errorMessage", result)))
        return result

    def kill_worker(self, tag: str) -> None:
        raise NotImplementedError("SAM's containers are not killed from here")

    def close(self) -> None:
        self._client.close()
