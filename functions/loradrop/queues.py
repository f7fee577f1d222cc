"""SQS helpers for handlers that Lambda feeds from a queue: each record handled on its own, failures
reported back (ReportBatchItemFailures), redelivery delays.

The batch loop is ours rather than Powertools' BatchProcessor: that utility imports asyncio and every
event data class (about 45 ms of each cold start, measured in docs/benchmarks.md) for what is a loop."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from loradrop.messages import MalformedMessage

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

logger = Logger(child=True)
_urls: dict[str, str] = {}


@dataclass(frozen=True)
class QueueRecord:
    """One SQS message as Lambda's event source hands it over."""

    message_id: str
    body: str
    receipt_handle: str
    event_source_arn: str
    receive_count: int

    @classmethod
    def from_event(cls, record: dict[str, Any]) -> QueueRecord:
        count = str(record.get("attributes", {}).get("ApproximateReceiveCount", "1"))
        return cls(
            message_id=record["messageId"],
            body=record.get("body", ""),
            receipt_handle=record["receiptHandle"],
            event_source_arn=record["eventSourceARN"],
            receive_count=int(count) if count.isdigit() else 1,
        )


class Deferred(Exception):
    """A record that is to come back in `seconds` (times `scale`, the local stack's time compression): a
    failure of the batch item, not an error worth a stack trace."""

    def __init__(self, seconds: float, *, scale: float = 1.0, reason: str = "") -> None:
        super().__init__(reason or f"deferred for {seconds:.0f} s")
        self.seconds = seconds
        self.scale = scale


def partial_batch(
    event: dict[str, Any], handle: Callable[[QueueRecord], None], sqs: Callable[[], SQSClient], *, queue: str
) -> dict[str, Any]:
    """Handle each record; the ones that raised are reported so SQS delivers only them again. A deferred
    record comes back after its delay; a malformed one, which no retry can fix, at once, so it reaches the
    dead-letter queue in seconds, not hours. A batch whose every record failed is an outcome (a 429 storm),
    not a function error."""
    failures = []
    for raw in event.get("Records", []):
        deferred: Deferred | None = None
        try:
            record = QueueRecord.from_event(raw)
            handle(record)
            continue
        except MalformedMessage as err:
            logger.error(f"malformed {queue} message: it goes to the dead-letter queue", extra={"problem": str(err)})
            deferred = Deferred(1, reason=str(err))
        except Deferred as err:
            deferred = err
        except Exception:
            logger.exception("record failed; SQS delivers it again", extra={"message_id": raw.get("messageId")})
        failures.append({"itemIdentifier": raw["messageId"]})
        if deferred is not None:
            _delay(sqs, record, deferred)
    return {"batchItemFailures": failures}


def _delay(sqs: Callable[[], SQSClient], record: QueueRecord, deferred: Deferred) -> None:
    try:
        delay_redelivery(sqs(), record.event_source_arn, record.receipt_handle, deferred.seconds, scale=deferred.scale)
    except Exception:  # it comes back after the queue's visibility timeout instead
        logger.exception("could not delay the record's redelivery", extra={"message_id": record.message_id})


def queue_url(sqs: SQSClient, arn: str) -> str:
    """The queue URL for an event source ARN (arn:aws:sqs:region:account:name), looked up once."""
    if arn not in _urls:
        _, _, _, _, account, name = arn.split(":", 5)
        _urls[arn] = sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
    return _urls[arn]


def backoff_seconds(receive_count: int, *, base: int, cap: int = 900) -> int:
    """Exponential back-off with jitter, capped below SQS's 12-hour visibility limit."""
    delay = min(cap, base * 2 ** max(0, receive_count - 1))
    return int(delay / 2 + random.uniform(0, delay / 2))  # noqa: S311 - jitter, not security


def rate_limit_backoff_seconds(
    receive_count: int, *, starts_per_minute: int = 2, submitters: int = 2, cap: int = 900
) -> int:
    """For a 429: WaveSpeed's start limit resets every minute, so wait for the next window at least.
    Where fewer starts fit in a minute than submitters compete for them (the Bronze tier's 2 for 2),
    a message that keeps meeting 429s waits one more window per try (linear, not exponential: retry
    soon after capacity returns; 40 receives still cover hours of backlog)."""
    windows = max(1.0, max(1, receive_count) * submitters / starts_per_minute)
    delay = min(cap, 60 * windows)
    return int(delay / 2 + random.uniform(0, delay / 2))  # noqa: S311 - jitter, not security


def delay_redelivery(sqs: SQSClient, arn: str, receipt_handle: str, seconds: float, *, scale: float = 1.0) -> None:
    """Keep a failed message invisible for `seconds` (times `scale`, the local stack's time compression,
    but at least 1 s: never visible at once) before SQS delivers it again."""
    timeout = max(1, min(round(seconds * scale), 43_200))
    sqs.change_message_visibility(QueueUrl=queue_url(sqs, arn), ReceiptHandle=receipt_handle, VisibilityTimeout=timeout)
