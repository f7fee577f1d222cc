"""The webhook receiver over random headers and bodies: never a 5xx, never a change without a signature."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loradrop_local.aws.events import http_api_event
from loradrop_local.aws.stack import LocalStack
from loradrop_local.dataset import training_zip

pytestmark = pytest.mark.integration

header_values = st.one_of(
    st.text(max_size=80),
    st.just("v3," + "0" * 64),
    st.integers().map(str),
    # shapes that once reached int() or the parser unchecked: superscript and fullwidth digits, joined headers
    st.sampled_from(["\u00b2", "\uff11\uff12\uff13", "v3, " + "0" * 64, "v3,a,v3," + "0" * 64, "v3," * 50]),
)
headers = st.dictionaries(
    st.sampled_from(["webhook-id", "webhook-timestamp", "webhook-signature", "content-type", "x-other"]),
    header_values,
)
bodies = st.one_of(
    st.binary(max_size=2048),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
        max_leaves=20,
    ).map(lambda v: json.dumps(v).encode()),
)


@pytest.fixture(scope="module")
def waiting_job(stack: LocalStack) -> dict[str, Any]:
    """A job whose task finished on WaveSpeed but whose webhook never came."""
    assert stack.simulator is not None
    stack.simulator.faults.webhook.append("drop")
    job_id = stack.upload(f"uploads/fuzz-target-{time.time_ns()}.zip", training_zip())
    job = stack.wait_for(job_id, {"SUBMITTED"})
    stack.simulator.faults.clear()
    return job


@settings(max_examples=150, deadline=None)
@given(headers=headers, body=bodies, use_task_id=st.booleans(), base64_body=st.booleans())
def test_random_webhooks(
    stack: LocalStack,
    waiting_job: dict[str, Any],
    headers: dict[str, str],
    body: bytes,
    use_task_id: bool,
    base64_body: bool,
) -> None:
    if use_task_id:
        headers = headers | {"webhook-id": waiting_job["prediction_id"]}
        body = json.dumps({"id": waiting_job["prediction_id"], "status": "completed"}).encode()
    event = http_api_event("POST", "/webhooks/wavespeed", headers, body, "203.0.113.9")
    if base64_body:
        event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
    answer = stack.invoke("ReceiveWebhookFunction", event)
    assert 400 <= answer["statusCode"] < 500
    assert stack.job(waiting_job["job_id"]) == waiting_job
