"""The sample gallery end to end on the local stack: an upload with `sample-prompts` → weights stored → one
`wavespeed-ai/flux-dev-lora` task per prompt → images beside the weights with their SHA-256, in the model card and
README.md, on the job and in a "Samples Ready" event. Faults in a sample's task, its POST, its webhook or its
output each end with the job COMPLETED, its weights untouched, exactly one inference task per prompt, and the
sample's state recorded."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import pytest

from loradrop.samples import Sample
from loradrop_dev.reliability.sample_counts import attempt_seeds, inference_tasks, sample_rows
from loradrop_local.aws.stack import LocalStack
from loradrop_local.dataset import training_zip
from loradrop_local.simulator.model import Task
from tests.integration.helpers import TERMINAL, events_for, reconcile

pytestmark = pytest.mark.integration

PROMPTS = "a portrait of {trigger} in a garden | {trigger} on a beach at sunset"


def sample_tasks(stack: LocalStack, job: dict[str, Any]) -> list[Task]:
    """The inference tasks WaveSpeed created for this job's samples (by the seed of each of their attempts)."""
    return inference_tasks(stack, {seed for row in rows_of(stack, job) for seed in attempt_seeds(row)})


def rows_of(stack: LocalStack, job: dict[str, Any]) -> list[Sample]:
    return [row for row in sample_rows(stack, job) if row is not None]


def weights_unchanged(stack: LocalStack, job: dict[str, Any]) -> None:
    bucket, key = job["weights_uri"].removeprefix("s3://").split("/", 1)
    body = stack.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == job["weights_sha256"]


def test_two_prompts_become_two_images_beside_the_weights(stack: LocalStack, key: str) -> None:
    # Given an upload that asks for two samples
    job_id = stack.upload(key, training_zip(), {"trigger-word": "zxq", "sample-prompts": PROMPTS})
    # When it trains and its weights are stored
    assert stack.wait_for(job_id, TERMINAL)["status"] == "COMPLETED"
    job = settled(stack, job_id)
    # Then WaveSpeed rendered exactly one image per prompt, with the trigger word in place and the LoRA linked
    tasks = sorted(sample_tasks(stack, job), key=lambda task: task.input["prompt"])
    assert [task.input["prompt"] for task in tasks] == ["a portrait of zxq in a garden", "zxq on a beach at sunset"]
    assert all(task.loras_fetched == 1 for task in tasks)
    # And both images are in S3 beside the weights, their SHA-256 on the job and in the model card
    s3 = stack.client("s3")
    samples = job["samples"]
    assert [s["state"] for s in samples] == ["done", "done"]
    for sample in samples:
        bucket, image_key = sample["image_uri"].removeprefix("s3://").split("/", 1)
        assert image_key == f"loras/{job_id}/samples/{sample['index'] + 1}.png"
        image = s3.get_object(Bucket=bucket, Key=image_key)["Body"].read()
        assert hashlib.sha256(image).hexdigest() == sample["image_sha256"]
        assert stack.simulator.expected_image(sample["prediction_id"]) == (len(image), sample["image_sha256"])  # type: ignore[union-attr]
    card_bucket, card_key = job["model_card_uri"].removeprefix("s3://").split("/", 1)
    card = json.loads(s3.get_object(Bucket=card_bucket, Key=card_key)["Body"].read())
    assert [(s["prompt"], s["seed"], s["image_sha256"]) for s in card["samples"]] == [
        (s["prompt"], s["seed"], s["image_sha256"]) for s in samples
    ]
    readme = s3.get_object(Bucket=card_bucket, Key=card_key.replace("model-card.json", "README.md"))["Body"].read()
    assert b"![a portrait of zxq in a garden](samples/1.png)" in readme
    weights_unchanged(stack, job)
    # And a "Samples Ready" event follows the job's "Job Completed", with the images' links in its summary
    events = events_for(stack, job_id)
    deadline = time.monotonic() + 5
    while len(events) < 2 and time.monotonic() < deadline:
        events = events_for(stack, job_id, events)
    kinds = [e["detail-type"] for e in events if e["detail"]["job_id"] == job_id]
    assert kinds == ["Job Completed", "Samples Ready"]
    ready = next(e for e in events if e["detail-type"] == "Samples Ready")
    assert all(s["image_uri"] in ready["detail"]["summary"] for s in samples)


def trained_with_faults(stack: LocalStack, key: str, **faults: list[Any]) -> str:
    """An upload with two sample prompts whose training task is held (created, its POST answered) until the faults
    for what comes after it, its samples' POSTs and tasks, are queued."""
    assert stack.simulator is not None
    stack.simulator.faults.held.append(1)
    job_id = stack.upload(key, training_zip(), {"trigger-word": "zxq", "sample-prompts": PROMPTS})
    deadline = time.monotonic() + 10
    while (stack.job(job_id) or {}).get("status") not in ("SUBMITTED", "TRAINING") and time.monotonic() < deadline:
        time.sleep(0.05)
    stack.simulator.faults.images_only = True  # a training task retried meanwhile takes none of them
    for name, values in faults.items():
        getattr(stack.simulator.faults, name).extend(values)
    stack.simulator.release()
    assert stack.wait_for(job_id, TERMINAL)["status"] == "COMPLETED"
    return job_id


def settled(stack: LocalStack, job_id: str, *, reconciling: bool = False) -> dict[str, Any]:
    """The job once its samples settled, running the reconciler meanwhile if asked (a lost webhook's remedy)."""
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        job = stack.job(job_id) or {}
        if job.get("samples_settled_at"):
            return job
        if reconciling:
            reconcile(stack)
        time.sleep(0.5)
    raise AssertionError(f"the samples of {job_id} did not settle: {rows_of(stack, stack.job(job_id) or {})}")


def one_task_per_prompt(stack: LocalStack, job: dict[str, Any]) -> list[Task]:
    tasks = sample_tasks(stack, job)
    assert sorted(task.input["seed"] for task in tasks) == sorted(sample["seed"] for sample in job["samples"])
    return tasks


def test_a_failed_sample_task_is_recorded_and_the_job_stays_completed(stack: LocalStack, key: str) -> None:
    job_id = trained_with_faults(stack, key, task=[(5000, "the renderer fell over")])
    job = settled(stack, job_id)
    assert job["status"] == "COMPLETED"
    weights_unchanged(stack, job)
    one_task_per_prompt(stack, job)
    failed, done = sorted(job["samples"], key=lambda sample: sample["state"] != "failed")
    assert (failed["state"], failed["error_code"], done["state"]) == ("failed", "5000", "done")
    assert "the renderer fell over" in failed["error"]
    readme = (
        stack.client("s3")
        .get_object(Bucket=stack.weights_bucket, Key=f"loras/{job_id}/README.md")["Body"]
        .read()
        .decode()
    )
    assert f"`{failed['prompt']}`: not rendered ([5000]" in readme
    assert f"![{done['prompt']}](samples/{done['index'] + 1}.png)" in readme


def test_a_lost_post_answer_is_settled_by_the_signed_webhook_without_a_second_task(stack: LocalStack, key: str) -> None:
    job_id = trained_with_faults(stack, key, submit=["drop_after_create"])
    job = settled(stack, job_id)
    one_task_per_prompt(stack, job)
    assert [sample["state"] for sample in job["samples"]] == ["done", "done"]
    notes = [entry.get("note", "") for row in rows_of(stack, job) for entry in row.history]
    assert "task adopted: its signed webhook" in notes
    weights_unchanged(stack, job)


def test_lost_webhooks_and_a_lost_post_answer_are_settled_by_the_reconciler(stack: LocalStack, key: str) -> None:
    # Given a sample POST whose answer is lost and no sample webhook at all
    job_id = trained_with_faults(stack, key, submit=["drop_after_create"], webhook=["drop", "drop"])
    time.sleep(1)
    assert {row.status.value for row in rows_of(stack, stack.job(job_id) or {})} == {
        "SAMPLE_SUBMITTING",
        "SAMPLE_RENDERING",
    }
    # When the reconciler runs: one from WaveSpeed's GET, the other found in its history by the input it echoes
    job = settled(stack, job_id, reconciling=True)
    one_task_per_prompt(stack, job)
    assert [sample["state"] for sample in job["samples"]] == ["done", "done"]
    notes = [entry.get("note", "") for row in rows_of(stack, job) for entry in row.history]
    assert "task adopted: found in WaveSpeed's prediction history" in notes
    weights_unchanged(stack, job)


def test_an_output_gone_ends_its_sample_and_leaves_the_rest(stack: LocalStack, key: str) -> None:
    # Given both sample tasks complete without their webhooks, and then one image is no longer served
    job_id = trained_with_faults(stack, key, webhook=["drop", "drop"])
    time.sleep(1)
    assert stack.simulator is not None
    stack.simulator.faults.download.append("vanish")
    # When the reconciler finds them completed and the worker copies them
    job = settled(stack, job_id, reconciling=True)
    one_task_per_prompt(stack, job)
    gone, done = sorted(job["samples"], key=lambda sample: sample["state"] != "failed")
    assert (gone["state"], gone["error_code"], done["state"]) == ("failed", "OUTPUT_GONE", "done")
    assert "the LoRA itself is unaffected" in gone["error"]
    assert job["status"] == "COMPLETED"
    weights_unchanged(stack, job)


def test_a_refused_lora_link_ends_the_samples_with_a_clear_note(stack: LocalStack, key: str) -> None:
    assert stack.simulator is not None
    stack.simulator.config.lora_urls_refused = True
    try:
        job_id = stack.upload(key, training_zip(), {"sample-prompts": "a photo of {trigger}"})
        assert stack.wait_for(job_id, TERMINAL)["status"] == "COMPLETED"
        job = settled(stack, job_id)
    finally:
        stack.simulator.config.lora_urls_refused = False
    (sample,) = job["samples"]
    assert sample["state"] == "failed"
    assert sample["error"].startswith("WaveSpeed refused the sample (HTTP 400)")
    assert sample_tasks(stack, job) == []  # refused before any task existed
    weights_unchanged(stack, job)
