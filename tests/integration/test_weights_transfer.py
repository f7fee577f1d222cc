"""The weights copy against moto's S3 and the simulator's CDN: multipart, checksummed, and a failed or
timed-out copy aborts its own multipart upload only (another copy of the same key may be running)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator

import httpx
import pytest

from loradrop.egress import OutputPolicy
from loradrop.weights import CopyTimedOut, DownloadFailed, PartPlan, transfer_weights
from loradrop_local.aws.stack import LocalStack

pytestmark = pytest.mark.integration
MIB = 1024 * 1024


@pytest.fixture
def sibling(stack: LocalStack) -> Iterator[tuple[str, str]]:
    """Another copy's multipart upload, in progress on the same key."""
    key = f"loras/transfer-{time.monotonic_ns()}/lora.safetensors"
    s3 = stack.client("s3")
    upload_id = s3.create_multipart_upload(Bucket=stack.weights_bucket, Key=key)["UploadId"]
    yield key, upload_id
    s3.abort_multipart_upload(Bucket=stack.weights_bucket, Key=key, UploadId=upload_id)


def copy(stack: LocalStack, task_id: str, key: str, deadline: float | None = None) -> object:
    assert stack.simulator is not None
    with httpx.Client(timeout=10) as http:
        return transfer_weights(
            url=f"{stack.simulator.url}/outputs/{task_id}/lora.safetensors",
            http=http,
            policy=OutputPolicy(stack.simulator.url),
            s3=stack.client("s3"),
            bucket=stack.weights_bucket,
            key=key,
            metadata={"job-id": "transfer-test"},
            plan=PartPlan.mib(5, 2),
            deadline=deadline,
        )


def open_uploads(stack: LocalStack, key: str) -> list[str]:
    uploads = stack.client("s3").list_multipart_uploads(Bucket=stack.weights_bucket, Prefix=key).get("Uploads", [])
    return [u["UploadId"] for u in uploads]


def test_multipart_copy_stores_every_byte_with_its_checksum(stack: LocalStack, sibling: tuple[str, str]) -> None:
    assert stack.simulator is not None
    key, sibling_id = sibling
    task = stack.simulator.add_completed_task(f"multipart-{time.monotonic_ns()}", 11 * MIB + 5)
    size, sha256 = stack.simulator.expected_output(task.id)
    stored = copy(stack, task.id, key)
    body = stack.client("s3").get_object(Bucket=stack.weights_bucket, Key=key)["Body"].read()
    assert (stored.size, stored.sha256) == (size, sha256)  # type: ignore[attr-defined]
    assert hashlib.sha256(body).hexdigest() == sha256
    assert len(body) == size
    assert open_uploads(stack, key) == [sibling_id]  # the sibling's upload is untouched


def test_a_broken_copy_aborts_only_its_own_upload(stack: LocalStack, sibling: tuple[str, str]) -> None:
    assert stack.simulator is not None
    key, sibling_id = sibling
    task = stack.simulator.add_completed_task(f"truncated-{time.monotonic_ns()}", 11 * MIB + 5)
    stack.simulator.faults.download.append("truncate")  # after 5.5 MiB: one part is already uploaded
    with pytest.raises(DownloadFailed):
        copy(stack, task.id, key)
    assert open_uploads(stack, key) == [sibling_id]
    assert "Contents" not in stack.client("s3").list_objects_v2(Bucket=stack.weights_bucket, Prefix=key)


def test_a_copy_past_its_deadline_stops_and_aborts_its_upload(stack: LocalStack, sibling: tuple[str, str]) -> None:
    assert stack.simulator is not None
    key, sibling_id = sibling
    task = stack.simulator.add_completed_task(f"slow-{time.monotonic_ns()}", 11 * MIB + 5)
    stack.simulator.faults.download.append("slow:0.15")  # per 1 MiB chunk: about 1.7 s in all
    started = time.monotonic()
    with pytest.raises(CopyTimedOut, match="to finish before the function's timeout"):
        copy(stack, task.id, key, deadline=started + 1.0)
    assert time.monotonic() - started < 1.6  # it stopped at the deadline, not at the end
    assert open_uploads(stack, key) == [sibling_id]
