"""What the use cases need from the world outside, as small protocols: WaveSpeed and the queues. The
adapters (`wavespeed.WaveSpeedClient`, boto3's SQS client) fit them, and so do the unit tests' fakes."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Protocol

from loradrop.deadline import Deadline
from loradrop.models import Task
from loradrop.wavespeed import HistoryPage


class WaveSpeed(Protocol):
    def submit_training(self, model: str, body: dict[str, Any], webhook_url: str) -> Task: ...

    def get_result(self, prediction_id: str, deadline: Deadline | None = ...) -> Task: ...

    def quote(self, model: str, body: dict[str, Any], deadline: Deadline | None = ...) -> Decimal: ...

    def balance(self, deadline: Deadline | None = ...) -> Decimal: ...

    def list_predictions(  # noqa: PLR0913 - as WaveSpeedClient's
        self,
        *,
        model: str,
        created_after: str,
        created_before: str,
        page: int,
        page_size: int = ...,
        deadline: Deadline | None = ...,
    ) -> HistoryPage: ...


class QueueSender(Protocol):
    """The one SQS call the use cases make (boto3's client has it)."""

    def send_message(self, *, QueueUrl: str, MessageBody: str) -> Any: ...
