"""One Lambda execution environment: imports one handler (INIT), then runs one invocation at a time.

Started by `lambda_runtime.Worker` as `python -m loradrop_local.aws.lambda_worker HANDLER RESPONSE_FD`
with the function's own environment. Requests arrive as JSON lines on stdin; each answer is one JSON
line on RESPONSE_FD. The handler's own output (its logs) goes to stdout, as in Lambda.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Any


@dataclass
class LambdaContext:
    """What handlers and Powertools read from Lambda's context object."""

    function_name: str
    memory_limit_in_mb: int
    invoked_function_arn: str
    aws_request_id: str
    deadline: float  # time.monotonic() at which Lambda would end the invocation
    function_version: str = "$LATEST"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return f"local/[$LATEST]{os.getpid()}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


def _log(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main() -> None:
    handler_path, response_fd = sys.argv[1], int(sys.argv[2])
    answers = os.fdopen(response_fd, "w", encoding="utf-8")
    function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
    started = time.monotonic()
    _log(f"INIT_START Runtime Version: python:3.13 Function: {function_name} Pid: {os.getpid()}")
    module_name, attribute = handler_path.rsplit(".", 1)
    handler = getattr(importlib.import_module(module_name), attribute)
    init_ms: float | None = (time.monotonic() - started) * 1000
    answers.write(json.dumps({"ready": True, "init_ms": init_ms}) + "\n")
    answers.flush()
    for line in sys.stdin:
        request = json.loads(line)
        began = time.monotonic()
        context = LambdaContext(
            function_name=function_name,
            memory_limit_in_mb=int(os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]),
            invoked_function_arn=request["function_arn"],
            aws_request_id=request["request_id"],
            deadline=began + request["timeout_ms"] / 1000,
        )
        _log(f"START RequestId: {context.aws_request_id} Version: $LATEST")
        try:
            answer: dict[str, Any] = {"result": handler(request["event"], context)}
        except Exception as err:  # reported to the caller as Lambda reports a function error
            answer = {
                "errorType": type(err).__name__,
                "errorMessage": str(err),
                "stackTrace": traceback.format_exception(err),
            }
        duration = (time.monotonic() - began) * 1000
        init = f" Init Duration: {init_ms:.2f} ms" if init_ms is not None else ""
        _log(f"END RequestId: {context.aws_request_id}")
        _log(f"REPORT RequestId: {context.aws_request_id} Duration: {duration:.2f} ms{init}")
        init_ms = None
        answers.write(json.dumps(answer, default=str) + "\n")
        answers.flush()


if __name__ == "__main__":
    main()
