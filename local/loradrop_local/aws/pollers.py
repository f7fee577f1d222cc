"""Lambda's event sources — SQS queues, the jobs table's DynamoDB stream — and the scheduler, played by threads
of the local stack."""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import suppress
from typing import Any

from loradrop_local.aws.events import scheduled_event, sqs_record, stream_failure, stream_record
from loradrop_local.aws.lambda_runtime import FunctionError
from loradrop_local.aws.provision import StreamSource

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


def poll_stream(  # noqa: PLR0913, PLR0917 - a thread target: the event source mapping's parts
    stopping: threading.Event,
    streams: Any,
    source: StreamSource,
    invoke: Invoke,
    send_failure: Callable[[dict[str, Any]], None],
    interval: float = 0.1,
) -> None:
    """Lambda's DynamoDB stream event source mapping, on the one shard moto keeps: read it in order from its
    start (TRIM_HORIZON), hand the function the records its filters pass, a batch at a time; resume from the
    first record a partial batch response names (or the batch's start when the function errs); after
    MaximumRetryAttempts send the batch's place to the on-failure destination and go on."""
    pending: list[dict[str, Any]] = []
    iterator: str | None = None
    retries = 0
    while not stopping.is_set():
        try:
            if iterator is None:
                shard = streams.describe_stream(StreamArn=source.stream_arn)["StreamDescription"]["Shards"][0]
                iterator = streams.get_shard_iterator(
                    StreamArn=source.stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
            if not pending:
                answer = streams.get_records(ShardIterator=iterator, Limit=1000)
                iterator, pending = answer["NextShardIterator"], answer["Records"]
        except Exception:  # moto is shutting down
            if stopping.wait(0.2):
                return
            continue
        if not pending:
            stopping.wait(interval)
            continue
        batch = pending[: source.batch_size]
        delivered = [r for r in batch if not source.filters or any(_matches(f, r) for f in source.filters)]
        failed = _deliver(source, delivered, invoke) if delivered else None
        if failed is None:
            pending, retries = pending[len(batch) :], 0
            continue
        retries += 1
        if 0 <= source.max_retries < retries:
            send_failure(stream_failure(source, delivered, retries))
            pending, retries = pending[len(batch) :], 0
            continue
        pending = [r for r in pending if int(r["dynamodb"]["SequenceNumber"]) >= failed]
        stopping.wait(min(1.0, 0.05 * retries))


def _deliver(source: StreamSource, records: list[dict[str, Any]], invoke: Invoke) -> int | None:
    """Invoke the function with the records; the sequence number to resume from, or None when all went."""
    event = {"Records": [stream_record(r, source.stream_arn) for r in records]}
    try:
        result = invoke(source.function, event) or {}
    except FunctionError:  # recorded by the stack: the whole batch again
        return int(records[0]["dynamodb"]["SequenceNumber"])
    failures = [int(item["itemIdentifier"]) for item in result.get("batchItemFailures", [])]
    return min(failures) if failures else None


def _matches(pattern: Any, value: Any) -> bool:
    """Lambda's event filtering, as far as this template uses it: nested keys, and a list of allowed values."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(key in value and _matches(p, value[key]) for key, p in pattern.items())
    return value in pattern if isinstance(pattern, list) else value == pattern
