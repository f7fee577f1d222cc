"""SubmitTraining's batches: intake messages (S3 upload notifications, submit requests) → submissions, one at a
time, the rest of a batch deferred after a 429 or when a submission could outlast the invocation (a POST cut off
by the Lambda timeout would leave an uncertain outcome)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger

from loradrop.dataset import SURVEY_SECONDS
from loradrop.deadline import Deadline
from loradrop.job import Job
from loradrop.messages import MalformedMessage, S3Notification, S3TestEvent, SubmitRequest, read_intake
from loradrop.queues import Deferred, QueueRecord, backoff_seconds, rate_limit_backoff_seconds
from loradrop.settings import SubmitSettings
from loradrop.submission import PRICE_SECONDS, RECORD_SECONDS, RetryLater, Submitter, UploadRef
from loradrop.wavespeed import longest_submit_seconds

logger = Logger(child=True)


class IntakeBatch:
    """One invocation's batch. `remaining_ms` is the invocation's time left."""

    def __init__(
        self, submitter: Callable[[], Submitter], settings: SubmitSettings, remaining_ms: Callable[[], int]
    ) -> None:
        self._submitter = submitter  # built on first use: an S3 test event needs no WaveSpeed
        self._settings = settings
        self._remaining_ms = remaining_ms
        self.rate_limited = False  # a 429 earlier in the batch: the rest waits instead of hitting WaveSpeed

    def handle(self, record: QueueRecord) -> None:
        """One queue message; raises Deferred (with its delay) for a message that is to come back."""
        try:
            self._process(read_intake(record.body))
        except RetryLater as err:
            self.rate_limited = self.rate_limited or err.rate_limited
            raise Deferred(self._delay(err, record.receive_count), scale=self._settings.retry_delay_scale) from err

    def uploads_in(self, event: dict[str, Any]) -> list[Job] | None:
        """A bare S3 event (`sam local invoke`, a notification without the queue): its uploads submitted at
        once; None for any other event."""
        records = event.get("Records", [])
        if not records or records[0].get("eventSource") != "aws:s3":
            return None
        return [self._submitter().accept_upload(upload, self._deadline()) for upload in _uploads(event)]

    def _process(self, message: SubmitRequest | S3TestEvent | S3Notification) -> None:
        if isinstance(message, S3TestEvent):
            logger.info("S3 test event ignored")
            return
        if isinstance(message, SubmitRequest):
            self._may_submit()
            if message.action == "retry":  # a person's `loradrop retry` of a FAILED job
                self._submitter().retry(message.job_id, self._deadline())
            else:
                self._submitter().resubmit(message.job_id, self._deadline())
            return
        created = _created(message.model_dump())
        if not created:
            raise MalformedMessage("an S3 notification without ObjectCreated records")
        for upload in filter(_is_upload, created):
            self._may_submit()
            self._submitter().accept_upload(upload, self._deadline())

    def _may_submit(self) -> None:
        if self.rate_limited:
            raise RetryLater("rate limited earlier in this batch", rate_limited=True)
        # Room for the dataset survey and the price before the POST, the longest POST, and the writes after it.
        needed = (
            SURVEY_SECONDS
            + PRICE_SECONDS
            + longest_submit_seconds(self._settings.submit_timeout_seconds)
            + RECORD_SECONDS
        )
        if self._remaining_ms() < needed * 1000:
            raise RetryLater("not enough time left in this invocation for another submission")

    def _deadline(self) -> Deadline:
        return Deadline.within(self._remaining_ms() / 1000)

    def _delay(self, err: RetryLater, receive_count: int) -> int:
        if err.rate_limited:  # WaveSpeed's start limit resets every minute
            return rate_limit_backoff_seconds(
                receive_count,
                starts_per_minute=self._settings.starts_per_minute,
                submitters=self._settings.submit_concurrency,
            )
        return backoff_seconds(receive_count, base=30)


def _created(body: dict[str, Any]) -> list[UploadRef]:
    """The objects an S3 notification's ObjectCreated records name, folder markers included."""
    return [
        UploadRef.from_s3_record(record)
        for record in body.get("Records", [])
        if record.get("eventSource") == "aws:s3" and str(record.get("eventName", "")).startswith("ObjectCreated")
    ]


def _is_upload(upload: UploadRef) -> bool:
    """A folder marker (the S3 console's "Create folder") is not an upload."""
    if upload.is_folder_marker:
        logger.info("folder marker ignored (the S3 console's 'Create folder')", extra={"key": upload.key})
        return False
    return True


def _uploads(body: dict[str, Any]) -> list[UploadRef]:
    return list(filter(_is_upload, _created(body)))
