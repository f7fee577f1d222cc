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

from loradrop.samples import SAMPLE_MODEL, input_digest
from loradrop_local.aws.stack import LocalStack
from loradrop_local.dataset import training_zip
from loradrop_local.simulator.model import Task
from tests.integration.helpers import TERMINAL, events_for, reconcile

pytestmark = pytest.mark.integration

PROMPTS = "a portrait of {trigger} in a garden | {trigger} on a beach at sunset"


def sample_tasks(stack: LocalStack, job: dict[str, Any]) -> list[Task]:
    """The inference tasks WaveSpeed created with this job's LoRA (told by their seeds' prompts' trigger word and
    the job's own sample rows)."""
    assert stack.simulator is not None
    rows = sample_rows(stack, job)
    digests = {row["submit_digest"] for row in rows if row.get("submit_digest")}
    seeds = {int(row["seed"]) for row in rows}
    return [
        task
        for task in list(stack.simulator.tasks.values())
        if task.model == SAMPLE_MODEL and (input_digest(task.input) in digests or task.input.get("seed") in seeds)
    ]


def sample_rows(stack: LocalStack, job: dict[str, Any]) -> list[dict[str, Any]]:
    table = stack.client("dynamodb")
    rows = []
    for index in range(len(job["params"].get("sample_prompts") or [])):
        item = table.get_item(
            TableName=stack.table_name, Key={"job_id": {"S": f"{job['job_id']}#sample-{index}"}}, ConsistentRead=True
        ).get("Item")
        if item:
            rows.append({k: list(v.values())[0] for k, v in item.items()})
    return rows


def wait_for_samples(stack: LocalStack, job_id: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = stack.job(job_id)
        if job and job.get("samples_settled_at"):
            return job
        time.sleep(0.1)
    job = stack.job(job_id) or {}
    raise AssertionError(f"the samples of {job_id} did not settle: {sample_rows(stack, job)}")


def weights_unchanged(stack: LocalStack, job: dict[str, Any]) -> None:
    bucket, key = job["weights_uri"].removeprefix("s3://").split("/", 1)
    body = stack.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == job["weights_sha256"]


def test_two_prompts_become_two_images_beside_the_weights(stack: LocalStack, key: str) -> None:
    # Given an upload that asks for two samples
    job_id = stack.upload(key, training_zip(), {"trigger-word": "zxq", "sample-prompts": PROMPTS})
    # When it trains and its weights are stored
    assert stack.wait_for(job_id, TERMINAL)["status"] == "COMPLETED"
    job = wait_for_samples(stack, job_id)
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
