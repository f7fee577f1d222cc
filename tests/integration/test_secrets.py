"""No secret in logs, job items or events: scanned after flows that touch every code path that logs."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from loradrop_local.dataset import training_zip
from loradrop_local.stack import LocalStack
from tests.integration.conftest import TERMINAL

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
