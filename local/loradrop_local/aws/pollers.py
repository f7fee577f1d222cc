"""Lambda's SQS event source and the scheduler, played by threads of the local stack."""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import suppress
from typing import Any

from loradrop_local.aws.events import scheduled_event, sqs_record
from loradrop_local.aws.lambda_runtime import FunctionError

Invoke = Callable[[str, dict[str, Any]], Any]


def poll_queue(  # noqa: PLR0913, PLR0917 - a thread target: the event source mapping's parts
    stopping: threading.Event, sqs: Any, url: str, arn: str, function: str, batch_size: int, invoke: Invoke
) -> None:
    """Receive a batch, invoke, delete what succeeded (partial batch responses); a function error returns
    the whole batch to the queue. `sqs` carries the function's role, as the event source mapping's does."""
    while not stopping.is_set():
        try:
            answer = sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=min(batch_size, 10),
                WaitTimeSeconds=1,
                MessageSystemAttributeNames=["All"],
            )
        except Exception:  # moto is shutting down
            if stopping.wait(0.2):
                return
            continue
        messages = answer.get("Messages", [])
        if not messages:
            continue
        event = {"Records": [sqs_record(message, arn) for message in messages]}
        failed: set[str] = {m["MessageId"] for m in messages}
        with suppress(FunctionError):  # recorded by the stack; the batch comes back after its timeout
            result = invoke(function, event) or {}
            failed = {item["itemIdentifier"] for item in result.get("batchItemFailures", [])}
        for message in messages:
            if message["MessageId"] not in failed:
                with suppress(Exception):  # the stack is stopping
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def run_every(stopping: threading.Event, seconds: float, function: str, invoke: Invoke) -> None:
    while not stopping.wait(seconds):
        with suppress(FunctionError):  # recorded by the stack; the next run tries again
            invoke(function, scheduled_event())
