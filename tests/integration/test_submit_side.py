"""The submit side over real HTTP: S3 notification → intake queue → SubmitTraining → simulator."""

from __future__ import annotations

import io
import json
import time
import uuid
import zipfile
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from loradrop_local.aws.stack import LocalStack
from loradrop_local.dataset import training_zip
from tests.integration.helpers import TERMINAL, events_for, log_lines, posts_for, reconcile, s3_notification
from tests.unit.zips import make_zip

pytestmark = pytest.mark.integration


def test_upload_becomes_one_task_with_the_right_parameters(stack: LocalStack, key: str) -> None:
    # Given a ZIP of 6 captioned images with training parameters as metadata
    job_id = stack.upload(key, training_zip(images=6), {"trigger-word": "zxq", "steps": "1500", "lora-rank": "8"})
    # When S3 notifies the intake queue
    job = stack.wait_for(job_id, TERMINAL)
    # Then WaveSpeed got exactly one POST with those parameters and a working presigned URL
    (post,) = posts_for(stack, key)
    assert post.status == 200
    # The job id rides along as an unsigned hint; the signed body decides (see the adoption tests)
    assert post.query["webhook"] == [f"{stack.webhook_url}?job={job_id}"]
    # ... and WaveSpeed delivered the webhook to that exact URL, query and all
    task = stack.simulator.tasks[job["prediction_id"]]  # type: ignore[union-attr]
    assert task.webhook == f"{stack.webhook_url}?job={job_id}"
    assert task.webhook_answers == [200]
    assert {k: post.body[k] for k in ("trigger_word", "steps", "learning_rate", "lora_rank")} == {
        "trigger_word": "zxq",
        "steps": 1500,
        "learning_rate": 0.0004,
        "lora_rank": 8,
    }
    presign = parse_qs(urlsplit(post.body["data"]).query)
    assert presign["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert presign["X-Amz-Expires"] == ["43200"]
    assert stack.simulator is not None
    task = stack.simulator.tasks[job["prediction_id"]]
    assert task.zip_fetched
    # And the job records the submission
    submitted = [h for h in job["history"] if h["status"] == "SUBMITTED"]
    assert submitted == [submitted[0] | {"prediction_id": task.id}]
    assert job["attempts"] == 1
    assert (job["archive"]["images"], job["archive"]["captions"]) == (6, 6)
    assert job["params"]["trigger_word"] == "zxq"
    assert job["source_key"] == key


def test_space_in_key_is_decoded(stack: LocalStack) -> None:
    key = f"uploads/my holiday photos {time.time_ns()}.zip"
    job = stack.wait_for(stack.upload(key, training_zip()), TERMINAL)
    assert job["source_key"] == key
    assert job["status"] == "COMPLETED"


def test_same_notification_five_times_submits_once(stack: LocalStack, key: str) -> None:
    body = training_zip()
    job_id = stack.upload(key, body)
    stack.wait_for(job_id, TERMINAL)
    etag = stack.client("s3").head_object(Bucket=stack.uploads_bucket, Key=key)["ETag"].strip('"')
    sqs = stack.client("sqs")
    for _ in range(5):
        sqs.send_message(
            QueueUrl=stack.queue_urls["IntakeQueue"], MessageBody=s3_notification(stack, key, etag, len(body))
        )
    deadline = time.monotonic() + 10
    while stack.queue_depth("IntakeQueue") and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    assert len(posts_for(stack, key)) == 1
    assert stack.job(job_id)["status"] == "COMPLETED"  # type: ignore[index]


def test_new_upload_of_same_key_is_a_new_job(stack: LocalStack, key: str) -> None:
    first = stack.upload(key, training_zip(images=5))
    stack.wait_for(first, TERMINAL)
    second = stack.upload(key, training_zip(images=7))
    assert second != first
    assert stack.wait_for(second, TERMINAL)["archive"]["images"] == 7
    assert len(posts_for(stack, key)) == 2


def _bomb() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a.png", b"\0" * (8 * 1024 * 1024))
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "the file is empty"),
        (b"PK but not really a zip" * 50, "not a ZIP archive"),
        (make_zip({}), "contains no files"),
        (make_zip({"notes.txt": b"hi", "data.csv": b"1,2"}), "no images found"),
        (make_zip({"__MACOSX/._a.png": b"x"}), "no images found"),
        (make_zip({"../../evil.png": b"x"}), "climbs out of the archive"),
        (make_zip({"/abs/evil.png": b"x"}), "absolute path"),
        (make_zip({"a.png": b"x"}, flags={"a.png": 1}), "encrypted"),
        (make_zip({"a.png": b"x"}, unix_modes={"a.png": 0o120777}), "symbolic link"),
        (make_zip({f"img{i:05d}.png": b"" for i in range(10_000)}), "10,000 entries, over the limit of 2,000"),
        (_bomb(), "ZIP bomb"),
    ],
    ids=[
        "empty",
        "not-zip",
        "no-files",
        "no-images",
        "only-macosx",
        "traversal",
        "absolute",
        "encrypted",
        "symlink",
        "too-many",
        "bomb",
    ],
)
def test_bad_archives_are_rejected_without_submission(stack: LocalStack, key: str, body: bytes, reason: str) -> None:
    job = stack.wait_for(stack.upload(key, body), TERMINAL)
    assert job["status"] == "REJECTED"
    assert job["error_code"] == "INVALID_UPLOAD"
    assert reason in job["error"]
    assert posts_for(stack, key) == []
    # Inspected by range reads: the end records (64 KiB + 42 bytes) and at most a small directory.
    log = stack.options.log_file.read_text() if stack.options.log_file else ""
    reads = [json.loads(line) for line in log.splitlines() if '"archive inspected"' in line and job["job_id"] in line]
    assert reads
    assert all(r["bytes_read"] <= 128 * 1024 and r["range_reads"] <= 2 for r in reads)


def test_invalid_metadata_is_rejected_naming_field_value_and_range(stack: LocalStack, key: str) -> None:
    job = stack.wait_for(stack.upload(key, training_zip(), {"lora-rank": "128", "steps": "50"}), TERMINAL)
    assert job["status"] == "REJECTED"
    assert job["error_code"] == "INVALID_PARAMETERS"
    assert "lora-rank='128' is invalid: must be a whole number from 1 to 64" in job["error"]
    assert "steps='50' is invalid: must be a whole number from 1000 to 10000" in job["error"]
    assert posts_for(stack, key) == []


def test_few_images_warn_but_train(stack: LocalStack, key: str) -> None:
    job = stack.wait_for(stack.upload(key, training_zip(images=2), {"colour": "blue"}), TERMINAL)
    assert job["status"] == "COMPLETED"
    assert any(w.startswith("only 2 distinct usable image(s)") for w in job["warnings"])
    assert "ignored unknown metadata: colour" in job["warnings"]


def test_rate_limit_is_retried_and_costs_no_attempt(stack: LocalStack, key: str) -> None:
    assert stack.simulator is not None
    stack.simulator.faults.submit.append("429")
    job = stack.wait_for(stack.upload(key, training_zip()), TERMINAL, timeout=30)
    assert job["status"] == "COMPLETED"
    assert [p.status for p in posts_for(stack, key)] == [429, 200]
    assert any("not submitted, will retry" in h.get("note", "") for h in job["history"])
    assert job["attempts"] == 1


def _wait_uncertain(stack: LocalStack, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 15
    job = stack.job(job_id) or {}
    while job.get("error_code") != "SUBMIT_UNCERTAIN" and job.get("status") in (None, "RECEIVED", "SUBMITTING"):
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
        job = stack.job(job_id) or {}
    return job


@pytest.mark.parametrize("fault", ["500", "503", "drop_before_create"])
def test_no_answer_is_never_resent_until_the_history_proves_nothing_was_created(
    stack: LocalStack, key: str, fault: str
) -> None:
    # Given WaveSpeed answers the POST with a 5xx (or drops it) before creating anything
    assert stack.simulator is not None
    stack.simulator.faults.submit.append(fault)
    body = training_zip()
    job_id = stack.upload(key, body)
    # Then the job waits on an uncertain outcome, saying so, and nothing is sent again
    job = _wait_uncertain(stack, job_id)
    assert job["status"] == "SUBMITTING"
    assert "will not send it again blindly" in job["error"]
    assert job["attempts"] == 1  # a task may exist
    # A redelivered notification finds the job SUBMITTING and stops
    etag = stack.client("s3").head_object(Bucket=stack.uploads_bucket, Key=key)["ETag"].strip('"')
    stack.client("sqs").send_message(
        QueueUrl=stack.queue_urls["IntakeQueue"], MessageBody=s3_notification(stack, key, etag, len(body))
    )
    time.sleep(1.0)
    assert len(posts_for(stack, key)) == 1
    # When the reconciler reads WaveSpeed's history after the grace period (2 s here)
    deadline = time.monotonic() + 20
    while (stack.job(job_id) or {})["status"] == "SUBMITTING" and time.monotonic() < deadline:
        reconcile(stack)
        time.sleep(0.3)
    # Then it proves no task was created, and the one new submission trains
    job = stack.wait_for(job_id, TERMINAL, timeout=30)
    assert job["status"] == "COMPLETED"
    assert [p.status for p in posts_for(stack, key)] == [int(fault) if fault.isdigit() else 0, 200]
    assert any("and again later, shows no task from this upload" in h.get("note", "") for h in job["history"])
    assert job["attempts"] == 1
    assert job["lost_submissions"] == 1
    history_reads = [r for r in stack.simulator.requests if r.path == "/api/v3/predictions"]
    assert history_reads
    assert {"page", "page_size", "model", "created_after", "created_before"} <= set(history_reads[-1].body)


@pytest.mark.parametrize("fault", ["drop_after_create", "502_after_create", "504_after_create", "slow:1.5"])
def test_task_created_without_a_usable_answer_is_adopted_by_its_webhook(
    stack: LocalStack, key: str, fault: str
) -> None:
    # Given WaveSpeed creates the task but its answer is lost or replaced by a gateway's error
    assert stack.simulator is not None
    stack.simulator.faults.submit.append(fault)
    job_id = stack.upload(key, training_zip())
    # Then the task's signed webhook adopts it: one POST, one task, weights stored
    job = stack.wait_for(job_id, TERMINAL, timeout=30)
    assert job["status"] == "COMPLETED"
    (post,) = posts_for(stack, key)
    task = stack.simulator.tasks[job["prediction_id"]]
    assert task.input == post.body
    assert any(h.get("note") == "task adopted: its signed webhook" for h in job["history"])
    assert job["attempts"] == 1


def test_wavespeed_refusal_fails_the_job_with_its_message(stack: LocalStack, key: str) -> None:
    # Given WaveSpeed no longer accepts our API key
    assert stack.simulator is not None
    original = stack.simulator.config.api_key
    stack.simulator.config.api_key = "rotated-elsewhere"
    try:
        job = stack.wait_for(stack.upload(key, training_zip()), TERMINAL)
    finally:
        stack.simulator.config.api_key = original
    assert job["status"] == "FAILED"
    assert job["error_code"] == "401"
    assert "WaveSpeed refused the task (HTTP 401)" in job["error"]
    assert len(posts_for(stack, key)) == 1


def test_batch_defers_when_the_invocation_is_running_out_of_time(stack: LocalStack, key: str) -> None:
    from loradrop_local.aws.provision import ACCOUNT

    # Given an upload outside the notification filter, and its notification in a scratch queue
    key = key.replace("uploads/", "manual/")
    body = training_zip()
    etag = stack.client("s3").put_object(Bucket=stack.uploads_bucket, Key=key, Body=body)["ETag"].strip('"')
    sqs = stack.client("sqs")
    name = f"scratch-{uuid.uuid4().hex[:8]}"
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody=s3_notification(stack, key, etag, len(body)))
    (message,) = sqs.receive_message(QueueUrl=url, MessageSystemAttributeNames=["All"])["Messages"]
    record = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message["Attributes"],
        "messageAttributes": {},
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:us-east-1:{ACCOUNT}:{name}",
        "awsRegion": "us-east-1",
    }
    # When the invocation has less time left than a slow WaveSpeed answer could take
    result = stack.invoke("SubmitTrainingFunction", {"Records": [record]}, timeout=5)
    # Then the message goes back to the queue untouched and nothing is sent to WaveSpeed
    assert result == {"batchItemFailures": [{"itemIdentifier": message["MessageId"]}]}
    assert posts_for(stack, key) == []
    sqs.delete_queue(QueueUrl=url)


def test_non_ascii_trigger_word_arrives_decoded(stack: LocalStack, key: str) -> None:
    from loradrop_cli.commands import _metadata_text

    # Given a trigger word with an accent, sent the way S3 stores and returns non-ASCII metadata
    encoded = _metadata_text("zoë")
    assert encoded.isascii()
    assert encoded.startswith("=?utf-8?")
    job = stack.wait_for(stack.upload(key, training_zip(), {"trigger-word": encoded}), TERMINAL)
    # Then the job and WaveSpeed get the word the user wrote
    assert job["status"] == "COMPLETED"
    assert job["params"]["trigger_word"] == "zoë"
    (post,) = posts_for(stack, key)
    assert post.body["trigger_word"] == "zoë"


def test_every_object_under_uploads_gets_a_job_whatever_its_name(stack: LocalStack, key: str) -> None:
    # An upper-case extension (S3's suffix filters are case-sensitive) trains like any other
    upper = stack.wait_for(stack.upload(key.replace(".zip", ".ZIP"), training_zip()), TERMINAL)
    assert upper["status"] == "COMPLETED"
    # Something that is not a ZIP is not ignored: it ends REJECTED with the reason
    notes = stack.wait_for(stack.upload(key.replace(".zip", ".txt"), b"just some notes"), TERMINAL)
    assert notes["status"] == "REJECTED"
    assert notes["error_code"] == "INVALID_UPLOAD"
    assert "not a ZIP archive" in notes["error"]
    # The S3 console's "Create folder" is not an upload: no job, nothing in the dead-letter queue
    folder_job = stack.upload(key.replace(".zip", "/"), b"")
    deadline = time.monotonic() + 10
    while stack.queue_depth("IntakeQueue") and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    assert stack.job(folder_job) is None
    assert stack.queue_depth("IntakeDeadLetterQueue") == 0
    assert '"message":"folder marker ignored (the S3 console\'s \'Create folder\')"' in log_lines(stack)
    assert f'"key":"{key.replace(".zip", "/")}"' in log_lines(stack)


def _priced(stack: LocalStack, key: str) -> list[Any]:
    assert stack.simulator is not None
    name = key.split("/", 1)[1]
    return [r for r in stack.simulator.requests if r.path == "/api/v3/model/pricing" and name in str(r.body["inputs"])]


def test_the_quote_for_the_exact_body_is_on_the_completed_job_its_card_and_its_event(
    stack: LocalStack, key: str
) -> None:
    job = stack.wait_for(stack.upload(key, training_zip(), {"steps": "2000"}), TERMINAL)
    assert (job["status"], job["quote_usd"]) == ("COMPLETED", 2)  # the simulator: 1 USD per 1,000 steps
    (post,) = posts_for(stack, key)
    (priced,) = _priced(stack, key)
    assert priced.body == {"model_id": "wavespeed-ai/flux-dev-lora-trainer", "inputs": post.body}
    bucket, card_key = job["model_card_uri"].removeprefix("s3://").split("/", 1)
    card = json.loads(stack.client("s3").get_object(Bucket=bucket, Key=card_key)["Body"].read())
    assert card["quote_usd"] == 2
    readme = stack.client("s3").get_object(Bucket=bucket, Key=card_key.rsplit("/", 1)[0] + "/README.md")
    assert "| price | 2.00 USD, WaveSpeed's quote before the task was started |" in readme["Body"].read().decode()
    (completed,) = events_for(stack, job["job_id"])
    assert completed["detail"]["quote_usd"] == 2


def test_without_a_price_a_stack_without_limits_trains_and_says_so(stack: LocalStack, key: str) -> None:
    assert stack.simulator is not None
    stack.simulator.faults.pricing.extend(["500", "proxy_502", "500"])  # every try of one quote
    job = stack.wait_for(stack.upload(key, training_zip()), TERMINAL)
    assert job["status"] == "COMPLETED"
    assert "quote_usd" not in job
    assert any(w.startswith("WaveSpeed gave no price for this task (") for w in job["warnings"])
    assert len(posts_for(stack, key)) == 1


def test_a_balance_below_the_quote_waits_with_nothing_paid_and_goes_once_topped_up(stack: LocalStack, key: str) -> None:
    assert stack.simulator is not None
    balance = stack.simulator.config.balance
    stack.simulator.config.balance = 0.4
    try:
        job_id = stack.upload(key, training_zip())
        deadline = time.monotonic() + 15
        while (stack.job(job_id) or {}).get("error_code") != "INSUFFICIENT_BALANCE":
            assert time.monotonic() < deadline, stack.job(job_id)
            time.sleep(0.05)
        waiting = stack.job(job_id) or {}
        assert waiting["status"] == "RECEIVED"
        assert "WaveSpeed's balance (0.40 USD) is below this job's quote (1.00 USD): top up" in waiting["error"]
        assert posts_for(stack, key) == []
        time.sleep(1.0)  # its message is done with: nothing is tried again until the reconciler says so
        assert posts_for(stack, key) == []
        assert (stack.job(job_id) or {})["status"] == "RECEIVED"
    finally:
        stack.simulator.config.balance = balance
    # Topped up: the reconciler's next pass queues the waiting job again, and it trains
    deadline = time.monotonic() + 30
    while (stack.job(job_id) or {})["status"] == "RECEIVED" and time.monotonic() < deadline:
        reconcile(stack)
        time.sleep(0.3)
    job = stack.wait_for(job_id, TERMINAL, timeout=60)
    assert (job["status"], job.get("error_code"), job["attempts"]) == ("COMPLETED", None, 1)
    assert [p.status for p in posts_for(stack, key)] == [200]
    assert any(h.get("note") == "submission re-queued by the reconciler" for h in job["history"])
