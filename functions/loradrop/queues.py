"""SQS helpers for handlers that Lambda feeds from a queue."""

from __future__ import annotations

import random
from typing import Any

_urls: dict[str, str] = {}


def queue_url(sqs: Any, arn: str) -> str:
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


def delay_redelivery(sqs: Any, arn: str, receipt_handle: str, seconds: float, *, scale: float = 1.0) -> None:
    """Keep a failed message invisible for `seconds` (times `scale`, the local stack's time compression,
    but at least 1 s: never visible at once) before SQS delivers it again."""
    timeout = max(1, min(round(seconds * scale), 43_200))
    sqs.change_message_visibility(QueueUrl=queue_url(sqs, arn), ReceiptHandle=receipt_handle, VisibilityTimeout=timeout)
