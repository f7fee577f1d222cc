"""Hostile input: WaveSpeed data pointing inside our network, malformed webhooks, other tenants, huge ZIPs."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from loradrop_dev.reliability.hostile import Listener
from loradrop_local.aws.stack import LocalStack
from loradrop_local.dataset import training_zip
from tests.integration.helpers import TERMINAL, posts_for
from tests.unit.zips import make_zip

pytestmark = pytest.mark.integration


@pytest.fixture
def listener() -> Iterator[Listener]:
    port = Listener()
    yield port
    port.close()


@pytest.mark.parametrize(
    "output",
    [
        "http://127.0.0.1:{port}/lora.safetensors",  # loopback, another port
        "https://127.0.0.1:{port}/lora.safetensors",
        "http://localhost:{port}/2018-06-01/runtime/invocation/next",  # the Lambda runtime API's shape
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",  # instance metadata
        "https://10.20.30.40/lora.safetensors",  # a private address
        "http://d1example.cloudfront.net/lora.safetensors",  # plain http
        "file:///etc/passwd",
    ],
)
def test_outputs_pointing_inside_are_refused_without_a_request(
    stack: LocalStack, key: str, listener: Listener, output: str
) -> None:
    assert stack.simulator is not None
    stack.simulator.faults.output.append(output.format(port=listener.port))
    job = stack.wait_for(stack.upload(key, training_zip()), TERMINAL)
    assert job["status"] == "FAILED"
    assert job["error_code"] == "OUTPUT_REFUSED"
    assert "refused to download the weights" in job["error"]
    assert listener.connections == 0


def test_redirect_to_an_internal_address_is_not_followed(stack: LocalStack, key: str, listener: Listener) -> None:
    assert stack.simulator is not None
    stack.simulator.faults.download.extend([f"redirect:http://127.0.0.1:{listener.port}/x"] * 5)
    job = stack.wait_for(stack.upload(key, training_zip()), TERMINAL, timeout=40)
    assert job["status"] == "FAILED"
    assert job["error_code"] == "OUTPUT_REFUSED"
    assert listener.connections == 0


def _signed(stack: LocalStack, body: bytes, webhook_id: str) -> dict[str, str]:
    assert stack.simulator is not None
    ts = str(int(time.time()))
    return {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": ts,
        "webhook-signature": stack.simulator.sign(webhook_id, ts, body),
    }


def test_deeply_nested_json_is_a_bad_request(stack: LocalStack) -> None:
    body = b'{"id": "x", "deep": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    answer = httpx.post(stack.webhook_url, content=body, headers=_signed(stack, body, "x"), timeout=10)
    assert answer.status_code == 400


def test_other_tenants_task_is_unknown_here(stack: LocalStack) -> None:
    assert stack.simulator is not None
    other = stack.simulator.create_task("flux-dev-lora-trainer", {"data": "https://x/y.zip"}, None, "other-tenant-key")
    body = json.dumps(other.public(stack.simulator.url)).encode()
    answer = httpx.post(stack.webhook_url, content=body, headers=_signed(stack, body, other.id), timeout=10)
    assert answer.status_code == 404
    gets = [r for r in stack.simulator.requests if r.path == f"/api/v3/predictions/{other.id}/result"]
    assert gets == []  # not even asked about: no job of ours has this id


def test_api_gateway_sized_body_is_refused(stack: LocalStack) -> None:
    body = b"x" * (11 * 1024 * 1024)
    answer = httpx.post(stack.webhook_url, content=body, headers={"content-type": "application/json"}, timeout=30)
    assert answer.status_code == 413


def _inspections(stack: LocalStack, job_id: str) -> list[dict[str, int]]:
    log = stack.options.log_file.read_text() if stack.options.log_file else ""
    return [json.loads(line) for line in log.splitlines() if '"archive inspected"' in line and job_id in line]


def test_inspection_reads_a_bounded_number_of_bytes(stack: LocalStack, key: str) -> None:
    job = stack.wait_for(stack.upload(key, training_zip(images=5)), TERMINAL)
    assert job["status"] == "COMPLETED"
    reads = _inspections(stack, job["job_id"])
    assert reads
    assert all(r["bytes_read"] <= 66 * 1024 and r["range_reads"] <= 2 for r in reads)


def test_archive_over_the_size_limit_is_rejected_unread(stack: LocalStack, key: str) -> None:
    # The test stack lowers MAX_ARCHIVE_BYTES to 64 MiB so a real upload can cross it quickly.
    big = make_zip({"huge.png": b"\0" * (65 * 1024 * 1024)})
    job = stack.wait_for(stack.upload(key, big), TERMINAL)
    assert job["status"] == "REJECTED"
    assert "over the limit of 64.0 MiB" in job["error"]
    assert [(r["bytes_read"], r["range_reads"]) for r in _inspections(stack, job["job_id"])] == [(0, 0)]
    assert posts_for(stack, key) == []
