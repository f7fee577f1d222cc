"""The webhook side over real HTTP: signed webhooks → ReceiveWebhook → store queue → StoreWeights."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from typing import Any

import httpx
import pytest

from loradrop_local.aws.stack import LocalStack
from loradrop_local.dataset import training_zip
from loradrop_local.simulator.model import Task
from tests.integration.helpers import TERMINAL, events_for, log_lines, posts_for, reconcile

pytestmark = pytest.mark.integration


def submitted_job(stack: LocalStack, key: str, webhook_fault: str = "drop") -> tuple[str, Task]:
    """A job whose task has finished on WaveSpeed's side but whose webhook never came."""
    assert stack.simulator is not None
    stack.simulator.faults.webhook.append(webhook_fault)
    job_id = stack.upload(key, training_zip())
    job = stack.wait_for(job_id, {"SUBMITTED"})
    task = stack.simulator.tasks[job["prediction_id"]]
    deadline = time.monotonic() + 10
    while task.status not in ("completed", "failed") and time.monotonic() < deadline:
        time.sleep(0.02)
    return job_id, task


def signed(stack: LocalStack, body: bytes, webhook_id: str, timestamp: int | None = None) -> dict[str, str]:
    assert stack.simulator is not None
    ts = str(timestamp if timestamp is not None else int(time.time()))
    return {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": ts,
        "webhook-signature": stack.simulator.sign(webhook_id, ts, body),
    }


def post(stack: LocalStack, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(stack.webhook_url, content=body, headers=headers, timeout=10)


def task_body(stack: LocalStack, task: Task, **changes: Any) -> bytes:
    return json.dumps(task.public(stack.simulator.url if stack.simulator else "") | changes).encode()


def downloads(stack: LocalStack, task_id: str) -> int:
    assert stack.simulator is not None
    return sum(1 for r in stack.simulator.requests if r.method == "GET" and r.path.startswith(f"/outputs/{task_id}/"))


def test_completed_task_ends_as_checksummed_weights_in_s3(stack: LocalStack, key: str) -> None:
    assert stack.simulator is not None
    job_id = stack.upload(key, training_zip(), {"trigger-word": "zxq", "lora-rank": "32"})
    job = stack.wait_for(job_id, TERMINAL)
    assert job["status"] == "COMPLETED"
    size, sha256 = stack.simulator.expected_output(job["prediction_id"])
    # The object's bytes are what WaveSpeed served
    bucket, object_key = job["weights_uri"].removeprefix("s3://").split("/", 1)
    assert bucket == stack.weights_bucket
    assert object_key == f"loras/{job_id}/lora-{job['prediction_id'][:8]}.safetensors"
    stored = stack.client("s3").get_object(Bucket=bucket, Key=object_key)
    body = stored["Body"].read()
    assert hashlib.sha256(body).hexdigest() == sha256 == job["weights_sha256"]
    assert len(body) == size == job["weights_size"]
    # It is a safetensors file with LoRA tensor names
    header_length = int.from_bytes(body[:8], "little")
    header = json.loads(body[8 : 8 + header_length])
    assert any(name.startswith("lora_unet_") for name in header)
    # The checksum (tags) and the job's parameters (metadata) travel with the object
    tags = stack.client("s3").get_object_tagging(Bucket=bucket, Key=object_key)["TagSet"]
    assert {t["Key"]: t["Value"] for t in tags} == {"sha256": sha256, "size-bytes": str(size)}
    assert stored["Metadata"]["job-id"] == job_id
    assert stored["Metadata"]["trigger-word"] == "zxq"
    assert stored["Metadata"]["lora-rank"] == "32"
    assert [h["status"] for h in job["history"]] == ["RECEIVED", "SUBMITTING", "SUBMITTED", "STORING", "COMPLETED"]
    assert stack.client("s3").list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    # Beside the weights, the model card: what the weights are, from what, how long it took
    assert job["model_card_uri"] == f"s3://{bucket}/loras/{job_id}/model-card.json"
    card = json.loads(
        stack.client("s3").get_object(Bucket=bucket, Key=f"loras/{job_id}/model-card.json")["Body"].read()
    )
    assert (card["weights"]["sha256"], card["weights"]["size"]) == (sha256, size)
    tensors = [name for name in header if name != "__metadata__"]
    assert card["weights"]["safetensors"]["tensors"] == len(tensors)
    assert card["weights"]["safetensors"]["dtypes"] == {"F16": len(tensors) - 1, "U8": 1}
    assert card["weights"]["safetensors"]["matches_size"] is True
    assert (card["trigger_word"], card["parameters"]["lora_rank"]) == ("zxq", 32)
    assert card["trainer"]["task_id"] == job["prediction_id"]
    assert card["trainer"]["task_created_at"]
    assert card["source"] == {
        "bucket": stack.uploads_bucket,
        "key": key,
        "version": None,
        "etag": job["source_etag"],
        "size": job["source_size"],
    }
    assert all(card["timings"][phase] >= 0 for phase in ("queued_seconds", "training_seconds", "storing_seconds"))
    readme = stack.client("s3").get_object(Bucket=bucket, Key=f"loras/{job_id}/README.md")["Body"].read().decode()
    assert readme.startswith(f"# LoRA `{job_id}`")


def test_ten_concurrent_duplicate_webhooks_store_once(stack: LocalStack, key: str) -> None:
    job_id, task = submitted_job(stack, key)
    body = task_body(stack, task)
    headers = signed(stack, body, task.id)
    answers: list[int] = []
    threads = [
        threading.Thread(target=lambda: answers.append(post(stack, body, headers).status_code)) for _ in range(10)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [200] * 10
    job = stack.wait_for(job_id, TERMINAL)
    assert job["status"] == "COMPLETED"
    time.sleep(0.5)  # any second store would have run by now
    assert downloads(stack, task.id) == 1
    assert [h["status"] for h in job["history"]].count("STORING") == 1
    seen: list[dict[str, Any]] = []
    assert [e["detail-type"] for e in events_for(stack, job_id, seen)] == ["Job Completed"]


def test_duplicate_deliveries_from_wavespeed_store_once(stack: LocalStack, key: str) -> None:
    assert stack.simulator is not None
    stack.simulator.faults.webhook.append("duplicate:10")
    job = stack.wait_for(stack.upload(key, training_zip()), TERMINAL)
    assert job["status"] == "COMPLETED"
    time.sleep(0.5)
    assert downloads(stack, job["prediction_id"]) == 1


@pytest.mark.parametrize("attack", ["forged", "stale", "missing-headers", "other-secret", "v1-scheme", "other-body"])
def test_unverified_webhooks_get_401_and_change_nothing(stack: LocalStack, key: str, attack: str) -> None:
    assert stack.simulator is not None
    job_id, task = submitted_job(stack, key)
    body = task_body(stack, task)
    headers = signed(stack, body, task.id)
    if attack == "forged":
        headers["webhook-signature"] = "v3," + "ab" * 32
    elif attack == "stale":
        headers = signed(stack, body, task.id, timestamp=int(time.time()) - 3600)
    elif attack == "missing-headers":
        headers = {"content-type": "application/json"}
    elif attack == "other-secret":
        ts = headers["webhook-timestamp"]
        headers["webhook-signature"] = stack.simulator.sign(task.id, ts, body, secret="whsec_attacker")
    elif attack == "v1-scheme":
        headers["webhook-signature"] = headers["webhook-signature"].replace("v3,", "v1,")
    elif attack == "other-body":
        body = task_body(stack, task, outputs=["https://evil.example/x.safetensors"])
    before = stack.job(job_id)
    answer = post(stack, body, headers)
    assert answer.status_code == 401
    assert answer.json() == {"statusCode": 401, "message": "invalid webhook signature"}
    time.sleep(0.2)
    assert stack.job(job_id) == before
    assert downloads(stack, task.id) == 0


def test_unknown_task_is_404_and_malformed_json_is_400(stack: LocalStack) -> None:
    body = json.dumps({"id": "no-such-task", "status": "completed"}).encode()
    answer = post(stack, body, signed(stack, body, "no-such-task"))
    assert answer.status_code == 404
    garbage = b'{"id": '
    answer = post(stack, garbage, signed(stack, garbage, "x"))
    assert answer.status_code == 400
    not_a_task = b'{"hello": "world"}'
    assert post(stack, not_a_task, signed(stack, not_a_task, "x")).status_code == 400


def test_oversized_body_is_refused_before_verification(stack: LocalStack) -> None:
    body = json.dumps({"id": "x", "padding": "a" * (300 * 1024)}).encode()
    answer = post(stack, body, signed(stack, body, "x"))
    assert answer.status_code == 413


def test_webhook_body_lying_about_outputs_is_not_followed(stack: LocalStack, key: str) -> None:
    assert stack.simulator is not None
    evil = f"{stack.simulator.url}/outputs/evil-task/stolen.safetensors"
    stack.simulator.faults.webhook.append(f"lie:{evil}")
    job = stack.wait_for(stack.upload(key, training_zip()), TERMINAL)
    assert job["status"] == "COMPLETED"
    _, expected_sha = stack.simulator.expected_output(job["prediction_id"])
    assert job["weights_sha256"] == expected_sha
    assert not any(r.path.startswith("/outputs/evil-task/") for r in stack.simulator.requests)


def test_failed_task_fails_the_job_with_wavespeeds_code(stack: LocalStack, key: str) -> None:
    assert stack.simulator is not None
    stack.simulator.faults.task.append((1200, "content flagged by moderation"))
    job_id = stack.upload(key, training_zip())
    job = stack.wait_for(job_id, TERMINAL)
    assert job["status"] == "FAILED"
    assert job["error_code"] == "1200"
    assert "content flagged by moderation" in job["error"]
    assert "remove it and upload again" in job["error"]
    assert len(posts_for(stack, key)) == 1
    failed = events_for(stack, job_id, [])
    assert [e["detail-type"] for e in failed] == ["Job Failed"]
    assert failed[0]["detail"]["error_code"] == "1200"


def test_retryable_failure_is_resubmitted_once_then_completes(stack: LocalStack, key: str) -> None:
    assert stack.simulator is not None
    stack.simulator.faults.task.append((5003, "service unavailable"))
    job = stack.wait_for(stack.upload(key, training_zip()), TERMINAL)
    assert job["status"] == "COMPLETED"
    assert job["attempts"] == 2
    posts = posts_for(stack, key)
    assert len(posts) == 2
    task_ids = [h["prediction_id"] for h in job["history"] if h.get("prediction_id")]
    assert len(set(task_ids)) == 2
    assert task_ids[-1] == job["prediction_id"]
    assert any("resubmitting (attempt 2 of 2)" in h.get("note", "") for h in job["history"])


def test_retryable_failures_stop_at_max_attempts(stack: LocalStack, key: str) -> None:
    assert stack.simulator is not None
    stack.simulator.faults.task.extend([(5004, "timeout"), (1402, "media URL not reachable")])
    job = stack.wait_for(stack.upload(key, training_zip()), TERMINAL)
    assert job["status"] == "FAILED"
    assert job["error_code"] == "1402"
    assert len(posts_for(stack, key)) == 2


def test_out_of_order_webhook_changes_nothing(stack: LocalStack, key: str) -> None:
    assert stack.simulator is not None
    stack.simulator.faults.webhook.append("out_of_order")
    job_id = stack.upload(key, training_zip())
    job = stack.wait_for(job_id, TERMINAL)
    task = stack.simulator.tasks[job["prediction_id"]]
    deadline = time.monotonic() + 5
    while task.webhooks_sent < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert task.webhooks_sent >= 2
    assert stack.job(job_id)["status"] == "COMPLETED"  # type: ignore[index]


def test_webhook_before_the_task_id_is_recorded_still_completes(stack: LocalStack, key: str) -> None:
    assert stack.simulator is not None
    stack.simulator.faults.webhook.append("early")
    job = stack.wait_for(stack.upload(key, training_zip()), TERMINAL)
    assert job["status"] == "COMPLETED"


def test_dropped_webhook_is_recovered_by_the_reconciler(stack: LocalStack, key: str) -> None:
    job_id, task = submitted_job(stack, key)
    time.sleep(0.3)
    assert stack.job(job_id)["status"] == "SUBMITTED"  # type: ignore[index]
    summary = reconcile(stack)["summary"]
    assert summary.get("storing", 0) >= 1
    job = stack.wait_for(job_id, TERMINAL)
    assert job["status"] == "COMPLETED"
    assert downloads(stack, task.id) == 1


def test_truncated_download_is_retried_without_partial_object(stack: LocalStack, key: str) -> None:
    assert stack.simulator is not None
    stack.simulator.faults.download.extend(["truncate", "reset"])
    job = stack.wait_for(stack.upload(key, training_zip()), TERMINAL, timeout=30)
    assert job["status"] == "COMPLETED"
    size, sha = stack.simulator.expected_output(job["prediction_id"])
    assert job["weights_sha256"] == sha
    assert downloads(stack, job["prediction_id"]) == 3
    s3 = stack.client("s3")
    prefix = f"loras/{job['job_id']}/"
    # (moto's list_object_versions deep-copies every object in the bucket, so ask the simulator instead)
    assert stack.simulator.tasks[job["prediction_id"]].downloads_completed == 1
    objects = {o["Key"]: o["Size"] for o in s3.list_objects_v2(Bucket=stack.weights_bucket, Prefix=prefix)["Contents"]}
    weights = job["weights_uri"].removeprefix(f"s3://{stack.weights_bucket}/")
    assert sorted(objects) == sorted([weights, f"{prefix}model-card.json", f"{prefix}README.md"])
    assert objects[weights] == size  # one whole object, no partial one beside it
    assert s3.list_multipart_uploads(Bucket=stack.weights_bucket, Prefix=prefix).get("Uploads", []) == []


def test_store_that_keeps_failing_ends_failed_and_in_the_dead_letter_queue(stack: LocalStack, key: str) -> None:
    assert stack.simulator is not None
    stack.simulator.faults.download.extend(["vanish"] * 5)
    job = stack.wait_for(stack.upload(key, training_zip()), TERMINAL, timeout=40)
    assert job["status"] == "FAILED"
    assert job["error_code"] == "STORE_FAILED"
    assert "after 5 tries" in job["error"]
    assert "HTTP 404" in job["error"]
    dead = stack.dead_letters_for("StoreDeadLetterQueue", job["job_id"])
    assert dead == [{"job_id": job["job_id"], "prediction_id": job["prediction_id"]}]
    bucket_listing = stack.client("s3").list_objects_v2(Bucket=stack.weights_bucket, Prefix=f"loras/{job['job_id']}/")
    assert bucket_listing.get("KeyCount", 0) == 0


def test_every_terminal_state_is_announced_on_the_bus(stack: LocalStack) -> None:
    assert stack.simulator is not None
    seen: list[dict[str, Any]] = []
    completed = stack.upload(f"uploads/bus-ok-{time.time_ns()}.zip", training_zip())
    stack.wait_for(completed, TERMINAL)  # before the failure fault below, which the next task takes
    rejected = stack.upload(f"uploads/bus-bad-{time.time_ns()}.zip", b"not a zip")
    stack.simulator.faults.task.append((1401, "invalid parameter"))
    failed = stack.upload(f"uploads/bus-fail-{time.time_ns()}.zip", training_zip())
    for job_id in (completed, rejected, failed):
        stack.wait_for(job_id, TERMINAL)
    time.sleep(0.2)
    kinds = {
        job_id: [e["detail-type"] for e in events_for(stack, job_id, seen)] for job_id in (completed, rejected, failed)
    }
    assert kinds == {completed: ["Job Completed"], rejected: ["Job Rejected"], failed: ["Job Failed"]}
    event = events_for(stack, completed, seen)[0]
    assert event["source"] == "loradrop"
    assert event["detail"]["weights_sha256"]
    assert event["detail"]["model_card_uri"].endswith(f"/loras/{completed}/model-card.json")
    assert "api_key" not in json.dumps(event)


def test_signed_webhook_adopts_an_uncertain_submission_whatever_the_url_hint_says(stack: LocalStack, key: str) -> None:
    # Given a task WaveSpeed created whose POST answer was lost, and whose webhook has not come
    assert stack.simulator is not None
    stack.simulator.faults.submit.append("drop_after_create")
    stack.simulator.faults.webhook.append("drop")
    job_id = stack.upload(key, training_zip())
    deadline = time.monotonic() + 15
    while (stack.job(job_id) or {}).get("error_code") != "SUBMIT_UNCERTAIN":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    (post_request,) = posts_for(stack, key)
    (task,) = [t for t in stack.simulator.tasks.values() if t.input == post_request.body]
    while task.status != "completed":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    body = task_body(stack, task)
    # When its signed webhook arrives with a hint naming another job (the query is not signed)
    forged_hint = f"{stack.webhook_url}?job=someone-else-0123456789ab"
    answer = httpx.post(forged_hint, content=body, headers=signed(stack, body, task.id), timeout=10)
    # Then the signed body decides: this job adopts the task and stores its weights
    assert answer.status_code == 200
    assert answer.json()["job_id"] == job_id
    assert answer.json()["outcome"] == "adopted, storing"
    job = stack.wait_for(job_id, TERMINAL)
    assert job["status"] == "COMPLETED"
    assert job["prediction_id"] == task.id
    assert job["attempts"] == 1
    assert len(posts_for(stack, key)) == 1


def test_webhook_for_an_unknown_task_naming_no_waiting_upload_is_not_adopted(stack: LocalStack, key: str) -> None:
    # Given a finished job, and a genuine-looking task for an upload no job is waiting on
    assert stack.simulator is not None
    job_id = stack.upload(key, training_zip())
    done = stack.wait_for(job_id, TERMINAL)
    stranger = stack.simulator.add_completed_task("stranger-task", 1024)
    stranger.input = {"data": "https://elsewhere.example/uploads/not-ours.zip?X-Amz-Signature=abc"}
    body = task_body(stack, stranger)
    # When its signed webhook arrives, hinting at the finished job
    answer = httpx.post(
        f"{stack.webhook_url}?job={job_id}", content=body, headers=signed(stack, body, stranger.id), timeout=10
    )
    # Then nobody adopts it, and the finished job is untouched
    assert answer.status_code == 404
    assert stack.job(job_id) == done


def test_an_output_bigger_than_any_lora_is_refused_before_it_is_copied(stack: LocalStack, key: str) -> None:
    # Given a task whose "weights" are 65 MiB while the stack allows 64 MiB (MaxWeightsMiB)
    assert stack.simulator is not None
    assert stack.function_environment("StoreWeightsFunction")["MAX_WEIGHTS_MIB"] == "64"
    stack.simulator.faults.output_size.append(65 * 1024 * 1024)
    job = stack.wait_for(stack.upload(key, training_zip()), TERMINAL)
    # Then the job fails with the reason and what to do, and nothing was stored
    assert job["status"] == "FAILED"
    assert job["error_code"] == "OUTPUT_TOO_LARGE"
    assert "65.0 MiB, over the 64.0 MiB allowed" in job["error"]
    assert "MaxWeightsMiB" in job["error"]
    assert stack.simulator.tasks[job["prediction_id"]].downloads_completed == 0
    listing = stack.client("s3").list_objects_v2(Bucket=stack.weights_bucket, Prefix=f"loras/{job['job_id']}/")
    assert listing.get("KeyCount", 0) == 0


def test_every_log_line_of_a_job_names_the_job_the_task_and_the_request(stack: LocalStack, key: str) -> None:
    job_id, task = submitted_job(stack, key)
    body = task_body(stack, task)
    assert post(stack, body, signed(stack, body, "log-keys-1")).status_code == 200
    stack.wait_for(job_id, TERMINAL)
    deadline = time.monotonic() + 10  # the copy logs "weights stored" just after the job is COMPLETED
    while True:
        lines = [json.loads(line) for line in log_lines(stack).splitlines() if line.startswith("{") and job_id in line]
        handled = [line for line in lines if line["message"] == "webhook handled"]
        stored = [line for line in lines if line["message"] == "weights stored"]
        if (handled and stored) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert handled
    assert stored
    for line in handled + stored:
        assert line["job_id"] == job_id
        assert line["prediction_id"] == task.id
    # The webhook's lines carry API Gateway's request id, to find them from an access log entry
    assert all(len(line.get("correlation_id", "")) == 36 for line in handled)
