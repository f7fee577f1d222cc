"""No secret in logs, job items or events: scanned after flows that touch every code path that logs."""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from loradrop_local.aws.stack import LocalStack
from loradrop_local.dataset import training_zip
from tests.integration.helpers import TERMINAL, events_for, log_lines, posts_for

pytestmark = pytest.mark.integration


def test_secrets_never_leave_secrets_manager(stack: LocalStack) -> None:
    assert stack.simulator is not None
    api_key = stack.simulator.config.api_key
    webhook_secret = stack.simulator.config.webhook_secret
    secrets = [api_key, webhook_secret, webhook_secret.removeprefix("whsec_")]
    # Given flows that complete, fail, get rejected, and a forged webhook
    stack.simulator.faults.task.append((1200, "flagged"))
    failed = stack.upload(f"uploads/secret-scan-fail-{time.time_ns()}.zip", training_zip())
    stack.wait_for(failed, TERMINAL)
    done = stack.upload(f"uploads/secret-scan-ok-{time.time_ns()}.zip", training_zip())
    rejected = stack.upload(f"uploads/secret-scan-bad-{time.time_ns()}.zip", b"nope")
    body = b'{"id": "x"}'
    forged = httpx.post(
        stack.webhook_url,
        content=body,
        timeout=10,
        headers={"webhook-id": "x", "webhook-timestamp": str(int(time.time())), "webhook-signature": "v3,00"},
    )
    assert forged.status_code == 401
    for job_id in (done, rejected):
        stack.wait_for(job_id, TERMINAL)
    # Then no secret appears in what users and operators see
    logs = stack.options.log_file.read_text() if stack.options.log_file else ""
    assert '"webhook rejected"' in logs  # the scan reads real log output
    items = json.dumps(stack.client("dynamodb").scan(TableName=stack.table_name)["Items"])
    events = json.dumps(stack.drain_events())
    for text in (logs, items, events):
        for secret in secrets:
            assert secret not in text


@pytest.mark.parametrize(
    ("fault_queue", "fault"),
    [("task", (1401, "invalid input: {input}")), ("submit", "400_echo")],
    ids=["task-error-echoes-input", "refusal-echoes-request"],
)
def test_presigned_link_echoed_by_wavespeed_is_redacted_everywhere(
    stack: LocalStack, key: str, fault_queue: str, fault: object
) -> None:
    assert stack.simulator is not None
    # Given WaveSpeed answers with an error that quotes our request, presigned ZIP link included
    getattr(stack.simulator.faults, fault_queue).append(fault)
    job_id = stack.upload(key, training_zip())
    job = stack.wait_for(job_id, TERMINAL)
    assert job["status"] == "FAILED"
    (post,) = posts_for(stack, key)
    link = post.body["data"]
    query = parse_qs(urlsplit(link).query)
    # (the local stack's session token is the word "local", which bucket names contain too)
    credentials = [query["X-Amz-Signature"][0], query["X-Amz-Credential"][0]]
    # Then the user still sees what WaveSpeed said, with the link's credentials cut out
    assert "<redacted>" in job["error"]
    assert urlsplit(link).path in job["error"]  # the object is still named
    time.sleep(0.3)
    events = json.dumps(events_for(stack, job_id))
    logs = log_lines(stack)
    items = json.dumps(stack.client("dynamodb").scan(TableName=stack.table_name)["Items"])
    assert "Job Failed" in events
    for text in (json.dumps(job), events, logs, items):
        for credential in credentials:
            assert credential not in text
