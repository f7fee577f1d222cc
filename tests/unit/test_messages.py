"""Queue messages: what the senders build, the handlers read back; anything else is malformed."""

from __future__ import annotations

import json

import pytest

from loradrop.messages import (
    MalformedMessage,
    S3Notification,
    S3TestEvent,
    StoreRequest,
    SubmitRequest,
    read_intake,
    read_store,
)
from tests.conftest import load_event


def test_what_is_sent_is_read_back() -> None:
    store = StoreRequest(job_id="ana-1", prediction_id="task-1")
    assert read_store(store.model_dump_json()) == store
    for action in ("resubmit", "retry"):
        request = SubmitRequest(job_id="ana-1", action=action)  # type: ignore[arg-type]
        assert read_intake(request.model_dump_json()) == request


def test_s3_sends_notifications_and_a_test_event() -> None:
    notification = json.loads(load_event("sqs_upload.json")["Records"][0]["body"])
    assert isinstance(read_intake(json.dumps(notification)), S3Notification)
    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "b", "RequestId": "r"}
    assert isinstance(read_intake(json.dumps(test_event)), S3TestEvent)


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "[]",
        "{}",
        '{"Records": []}',
        '{"job_id": "ana-1", "action": "delete"}',
        '{"job_id": "", "action": "retry"}',
        '{"job_id": "ana-1", "action": "retry", "extra": 1}',
    ],
)
def test_anything_else_on_the_intake_queue_is_malformed(body: str) -> None:
    with pytest.raises(MalformedMessage, match="not an S3 notification, resubmit or retry request"):
        read_intake(body)


@pytest.mark.parametrize("body", ["{}", '{"job_id": "ana-1"}', '{"job_id": "a", "prediction_id": 7}', "null"])
def test_a_store_message_names_a_job_and_its_task(body: str) -> None:
    with pytest.raises(MalformedMessage, match="not a store or sample request"):
        read_store(body)
