"""WaveSpeed's official Python SDK (`wavespeed` 2.0.5) as a client of the simulator: where the two
disagree, the simulator is wrong. Covers what loradrop relies on: submit, result polling, the task
statuses the SDK treats as terminal, and a gateway error after the task was created."""

from __future__ import annotations

import json
import re
import struct
import uuid

import httpx
import pytest
from wavespeed import Client

from loradrop_local.aws.stack import LocalStack
from loradrop_local.dataset import training_zip

pytestmark = pytest.mark.integration
MODEL = "wavespeed-ai/flux-dev-lora-trainer"


@pytest.fixture
def zip_url(stack: LocalStack) -> str:
    """A presigned link to a training ZIP outside uploads/ (so no loradrop job picks it up)."""
    key = f"manual/sdk-{uuid.uuid4().hex[:8]}.zip"
    s3 = stack.client("s3")
    s3.put_object(Bucket=stack.uploads_bucket, Key=key, Body=training_zip())
    url: str = s3.generate_presigned_url("get_object", Params={"Bucket": stack.uploads_bucket, "Key": key})
    return url


def sdk(stack: LocalStack) -> Client:
    assert stack.simulator is not None
    return Client(api_key=stack.simulator.config.api_key, base_url=stack.simulator.url, retry_interval=0.05)


def tasks_for(stack: LocalStack, url: str) -> list[object]:
    assert stack.simulator is not None
    return [t for t in list(stack.simulator.tasks.values()) if t.input.get("data") == url]


@pytest.mark.parametrize("model", [MODEL, "wavespeed-ai/flux-dev-lora-trainer-turbo"])
def test_sdk_trains_and_gets_safetensors(stack: LocalStack, zip_url: str, model: str) -> None:
    result = sdk(stack).run(
        model, {"data": zip_url, "trigger_word": "zxq", "steps": 1000}, poll_interval=0.05, timeout=30
    )
    (output,) = result["outputs"]
    assert output.endswith(".safetensors")
    body = httpx.get(output, timeout=10).content
    (header_length,) = struct.unpack("<Q", body[:8])
    assert any(name.startswith("lora_unet_") for name in json.loads(body[8 : 8 + header_length]))


def test_sdk_parameter_error_is_a_refusal_with_wavespeeds_json(stack: LocalStack, zip_url: str) -> None:
    result = sdk(stack).run_no_throw(MODEL, {"data": zip_url, "lora_rank": 65}, poll_interval=0.05, timeout=10)
    assert result["status"] == "failed"
    assert "HTTP 400" in result["error"]
    assert "lora_rank" in result["error"]
    assert tasks_for(stack, zip_url) == []


def test_gateway_error_after_create_is_ambiguous_to_the_sdk_too(stack: LocalStack, zip_url: str) -> None:
    # The simulator's "502 after create" is what the SDK means by an ambiguous submission: it reports
    # the failure and does not POST again, and the task exists (and would be billed).
    assert stack.simulator is not None
    stack.simulator.faults.submit.append("502_after_create")
    result = sdk(stack).run_no_throw(MODEL, {"data": zip_url}, poll_interval=0.05, timeout=10)
    assert result["status"] == "failed"
    assert "HTTP 502" in result["error"]
    assert len(tasks_for(stack, zip_url)) == 1
    posts = [r for r in stack.simulator.submissions() if isinstance(r.body, dict) and r.body.get("data") == zip_url]
    assert len(posts) == 1


@pytest.mark.parametrize("ending", ["cancelled", "timeout", "deleted"])
def test_sdk_sees_the_simulators_end_statuses_as_terminal(stack: LocalStack, zip_url: str, ending: str) -> None:
    assert stack.simulator is not None
    stack.simulator.faults.ending.append(ending)
    result = sdk(stack).run_no_throw(MODEL, {"data": zip_url}, poll_interval=0.05, timeout=10)
    assert result["status"] == "failed"
    assert f"Prediction {ending}" in result["error"]
    (task,) = tasks_for(stack, zip_url)
    assert result["task_id"] == task.id  # type: ignore[attr-defined]


def test_sdk_sync_mode_waits_for_the_end_in_one_request(stack: LocalStack, zip_url: str) -> None:
    assert stack.simulator is not None
    result = sdk(stack).run_no_throw(MODEL, {"data": zip_url}, enable_sync_mode=True, timeout=30)
    assert result["status"] == "completed"
    (task,) = tasks_for(stack, zip_url)
    assert result["task_id"] == task.id  # type: ignore[attr-defined]
    polls = [r for r in stack.simulator.requests if r.path.endswith(f"/{task.id}/result")]  # type: ignore[attr-defined]
    assert polls == []  # the one POST answered with the finished task


def test_results_have_the_documented_shape(stack: LocalStack, zip_url: str) -> None:
    assert stack.simulator is not None
    result = sdk(stack).run(MODEL, {"data": zip_url}, poll_interval=0.05, timeout=30)
    (task,) = tasks_for(stack, zip_url)
    answer = httpx.get(
        f"{stack.simulator.url}/api/v3/predictions/{task.id}/result",  # type: ignore[attr-defined]
        headers={"Authorization": f"Bearer {stack.simulator.config.api_key}"},
        timeout=10,
    ).json()
    data = answer["data"]
    assert answer["code"] == 200
    assert answer["message"] == "success"
    assert data["outputs"] == result["outputs"]
    assert data["has_nsfw_contents"] == [False]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", data["created_at"])
    assert data["urls"]["get"].endswith(f"/api/v3/predictions/{task.id}/result")  # type: ignore[attr-defined]


def test_a_missing_required_parameter_is_1400_and_an_invalid_one_1401(stack: LocalStack, zip_url: str) -> None:
    assert stack.simulator is not None
    headers = {"Authorization": f"Bearer {stack.simulator.config.api_key}"}
    missing = httpx.post(f"{stack.simulator.url}/api/v3/{MODEL}", json={"steps": 1000}, headers=headers, timeout=10)
    invalid = httpx.post(
        f"{stack.simulator.url}/api/v3/{MODEL}", json={"data": zip_url, "steps": 1}, headers=headers, timeout=10
    )
    assert (missing.status_code, missing.json()["error_code"]) == (400, 1400)
    assert (invalid.status_code, invalid.json()["error_code"]) == (400, 1401)
    result = sdk(stack).run_no_throw(MODEL, {"steps": 1000}, timeout=10)
    assert "HTTP 400" in result["error"]
    assert "data is required" in result["error"]


def test_a_task_the_balance_cannot_pay_for_is_refused_before_it_exists(stack: LocalStack, zip_url: str) -> None:
    assert stack.simulator is not None
    balance = stack.simulator.config.balance
    stack.simulator.config.balance = 0.5
    try:
        result = sdk(stack).run_no_throw(MODEL, {"data": zip_url, "steps": 1000}, poll_interval=0.05, timeout=10)
    finally:
        stack.simulator.config.balance = balance
    assert result["status"] == "failed"
    assert "HTTP 403" in result["error"]
    assert "Insufficient balance" in result["error"]
    assert tasks_for(stack, zip_url) == []


def test_pricing_and_balance_answer_in_the_documented_envelope(stack: LocalStack, zip_url: str) -> None:
    assert stack.simulator is not None
    auth = {"Authorization": f"Bearer {stack.simulator.config.api_key}"}
    base = stack.simulator.url
    inputs = {"data": zip_url, "steps": 3000}
    priced = httpx.post(f"{base}/api/v3/model/pricing", json={"model_id": MODEL, "inputs": inputs}, headers=auth)
    assert priced.json() == {
        "code": 200,
        "message": "success",
        "data": {"model_id": MODEL, "unit_price": 3.0, "currency": "USD"},  # 1 USD per 1,000 steps
    }
    turbo = {"model_id": f"{MODEL}-turbo", "inputs": inputs}
    assert httpx.post(f"{base}/api/v3/model/pricing", json=turbo, headers=auth).json()["data"]["unit_price"] == 2.25
    assert httpx.post(f"{base}/api/v3/model/pricing", json=turbo).status_code == 401
    before = httpx.get(f"{base}/api/v3/balance", headers=auth).json()["data"]["balance"]
    account = httpx.get(f"{base}/api/v3/account/balance", headers=auth).json()["data"]
    assert account == {"balance": before, "currency": "USD"}
    sdk(stack).run(MODEL, {"data": zip_url, "steps": 2000}, poll_interval=0.05, timeout=30)
    after = httpx.get(f"{base}/api/v3/balance", headers=auth).json()["data"]["balance"]
    assert round(before - after, 4) == 2.0  # the task spent its price
