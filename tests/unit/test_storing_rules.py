"""Storer.store, rule by rule: one copy per job under a lease, what each failure records, the last try.
moto in process for DynamoDB and S3, a mock transport for WaveSpeed's CDN, a fake WaveSpeed."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from aws_lambda_powertools import Logger

from loradrop.models import JobStatus
from loradrop.redaction import json_for_logs
from loradrop.storing import CopyInProgress, Storer
from loradrop.weights import DownloadFailed
from tests.unit.conftest import World
from tests.unit.tables import job_in
from tests.unit.test_safetensors import LORA, safetensors_file

Logger(json_serializer=json_for_logs)
TASK = "task-1"
CDN = "https://cdn.test"
OUTPUT = f"{CDN}/outputs/{TASK}/lora.safetensors"
WEIGHTS = bytes(range(256)) * 4096  # 1 MiB
KEY = "loras/ana-1/lora.safetensors"


@pytest.fixture
def environment() -> dict[str, str]:
    return {
        "OUTPUT_HOSTS": CDN,
        "STORE_MAX_RECEIVES": "3",
        "WEIGHTS_PART_SIZE_MIB": "5",
        "MAX_WEIGHTS_MIB": "2",
    }


@pytest.fixture
def world(world: World) -> World:
    """The world, its CDN serving WEIGHTS for the completed task TASK."""
    world.cdn.body = WEIGHTS
    world.wavespeed.add(TASK, status="completed", outputs=[OUTPUT])
    return world


def store(world: World, receive: int = 1, seconds: float = 600, owner: str = "inv-1") -> tuple[Any, str]:
    result: tuple[Any, str] = world.storer.store("ana-1", TASK, receive, remaining_seconds=seconds, owner=owner)
    return result


def test_a_storing_job_ends_completed_with_its_weights_checksummed(world: World) -> None:
    job_in(world.jobs, JobStatus.STORING)
    job, _ = store(world)
    assert job.status is JobStatus.COMPLETED
    body = world.s3.get_object(Bucket="weights", Key=KEY)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == hashlib.sha256(WEIGHTS).hexdigest() == job.weights_sha256
    assert job.weights_uri == f"s3://weights/{KEY}"
    assert job.store_lease_until is None  # the lease ends with the copy


@pytest.mark.parametrize("status", [JobStatus.SUBMITTED, JobStatus.TRAINING, JobStatus.COMPLETED, JobStatus.REJECTED])
def test_only_a_storing_job_is_copied(world: World, status: JobStatus) -> None:
    job_in(world.jobs, status)
    job, said = store(world)
    assert (said, job.status) == ("unchanged", status)
    assert world.cdn.requests == 0


def test_an_unknown_job_or_another_task_changes_nothing(world: World) -> None:
    assert store(world) == (None, "unknown job")
    job_in(world.jobs, JobStatus.STORING)
    job, said = world.storer.store("ana-1", "someone-elses", 1, remaining_seconds=600, owner="inv-1")
    assert (said, job.status, world.cdn.requests) == ("unchanged", JobStatus.STORING, 0)


def test_a_live_lease_defers_a_second_copy_until_it_ends(world: World) -> None:
    job_in(world.jobs, JobStatus.STORING, store_lease_until="2999-01-01T00:00:00.000Z", store_lease_owner="inv-0")
    with pytest.raises(CopyInProgress) as busy:
        store(world)
    assert busy.value.seconds_left > 0
    assert world.cdn.requests == 0


def test_a_failed_try_is_noted_and_released_and_the_last_try_ends_the_job(world: World) -> None:
    job_in(world.jobs, JobStatus.STORING)
    world.cdn.fail_with = 404
    with pytest.raises(DownloadFailed):
        store(world, receive=1)
    after_one = world.jobs.get("ana-1")
    assert after_one.status is JobStatus.STORING
    assert after_one.store_lease_until is None  # the next delivery may copy at once
    assert after_one.last_note("copy attempt failed") == "copy attempt failed: weights download answered HTTP 404"
    with pytest.raises(DownloadFailed):
        store(world, receive=3)  # STORE_MAX_RECEIVES
    ended = world.jobs.get("ana-1")
    assert (ended.status, ended.error_code) == (JobStatus.FAILED, "STORE_FAILED")
    assert "loradrop retry ana-1" in ended.error


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"outputs": ["https://elsewhere.test/lora.safetensors"]}, "OUTPUT_REFUSED"),
        ({"outputs": []}, "NO_OUTPUT"),
    ],
)
def test_outputs_that_cannot_be_weights_end_the_job_with_the_reason(
    world: World, change: dict[str, Any], code: str
) -> None:
    job_in(world.jobs, JobStatus.STORING)
    world.wavespeed.add(TASK, status="completed", outputs=change["outputs"])
    job, said = store(world)
    assert (said, job.status, job.error_code) == ("failed", JobStatus.FAILED, code)
    assert world.cdn.requests == 0


def test_an_output_over_the_cap_is_refused_with_what_to_change(world: World) -> None:
    job_in(world.jobs, JobStatus.STORING)
    world.storer._settings = world.storer._settings.model_copy(update={"max_weights_mib": 0})
    job, _ = store(world)
    assert (job.status, job.error_code) == (JobStatus.FAILED, "OUTPUT_TOO_LARGE")
    assert "MaxWeightsMiB" in job.error


def test_a_failed_copy_is_reopened_by_its_store_message(world: World) -> None:
    job_in(world.jobs, JobStatus.FAILED, error_code="STORE_FAILED", error="earlier tries failed")
    job, _ = store(world)
    assert job.status is JobStatus.COMPLETED
    assert [e.note for e in job.history if e.note] == ["copy retried after [STORE_FAILED]"]


def test_a_model_card_and_readme_are_written_beside_the_weights(world: World) -> None:
    world.cdn.body = safetensors_file(LORA, {"format": "pt"})
    job_in(
        world.jobs,
        JobStatus.STORING,
        params={"trigger_word": "zxq", "steps": 1500, "learning_rate": 0.0004, "lora_rank": 16, "model": "m"},
        dataset={"images": 8, "distinct": 8, "usable": 8, "captions": 0, "formats": {"JPEG": 8}},
        warnings=["1 duplicate image(s)"],
    )
    job, _ = store(world)
    assert job.model_card_uri == "s3://weights/loras/ana-1/model-card.json"
    card = json.loads(world.s3.get_object(Bucket="weights", Key="loras/ana-1/model-card.json")["Body"].read())
    assert (card["trigger_word"], card["trigger_word_used"]) == ("zxq", True)  # no captions: the word was used
    assert card["trigger_word_in_captions"] is None
    assert card["parameters"] == {"steps": 1500, "learning_rate": 0.0004, "lora_rank": 16}
    assert card["trainer"] == {"provider": "WaveSpeed", "model": "m", "task_id": TASK}
    assert card["weights"]["sha256"] == hashlib.sha256(world.cdn.body).hexdigest() == job.weights_sha256
    assert card["weights"]["safetensors"]["tensors"] == 3
    assert card["weights"]["safetensors"]["dtypes"] == {"BF16": 2, "F32": 1}
    assert card["source"]["key"] == "uploads/ana.zip"
    assert card["dataset"]["formats"] == {"JPEG": 8}
    assert card["warnings"] == ["1 duplicate image(s)"]
    assert card["timings"]["stored_at"] >= card["timings"]["received_at"]
    readme = world.s3.get_object(Bucket="weights", Key="loras/ana-1/README.md")
    assert readme["ContentType"] == "text/markdown; charset=utf-8"
    text = readme["Body"].read().decode()
    assert "**Trigger word:** `zxq`" in text
    assert f"`{job.weights_sha256}`" in text
    assert "3 (BF16 2, F32 1)" in text


@pytest.mark.parametrize(
    ("mentioning", "in_captions", "says"),
    [
        (5, "all", "every caption mentions `zxq`, so the LoRA answers to it: e.g. `a photo of zxq`."),
        (2, "some", "only 2 of 5 captions mention `zxq`, so the LoRA may answer to it only weakly"),
        (0, "none", "none of them mentions `zxq`, so the LoRA will not answer to it"),
    ],
)
def test_the_model_card_says_whether_the_captions_name_the_trigger_word(
    world: World, mentioning: int, in_captions: str, says: str
) -> None:
    world.cdn.body = safetensors_file(LORA, {"format": "pt"})
    dataset = {"images": 5, "captions": 5, "captions_with_text": 5, "captions_mentioning_trigger": mentioning}
    job_in(world.jobs, JobStatus.STORING, params={"trigger_word": "zxq", "model": "m"}, dataset=dataset)
    store(world)
    card = json.loads(world.s3.get_object(Bucket="weights", Key="loras/ana-1/model-card.json")["Body"].read())
    assert (card["trigger_word_used"], card["trigger_word_in_captions"]) == (False, in_captions)
    text = world.s3.get_object(Bucket="weights", Key="loras/ana-1/README.md")["Body"].read().decode()
    assert "the dataset had captions, so WaveSpeed trained on them and ignored the trigger word" in text
    assert says in text


def test_weights_that_are_no_safetensors_file_complete_with_a_warning(world: World) -> None:
    job_in(world.jobs, JobStatus.STORING)  # the CDN serves bytes that are no safetensors file
    job, _ = store(world)
    assert job.status is JobStatus.COMPLETED
    assert any(w.startswith("the weights file is not a safetensors file") for w in job.warnings)
    card = json.loads(world.s3.get_object(Bucket="weights", Key="loras/ana-1/model-card.json")["Body"].read())
    assert card["weights"]["safetensors"]["valid"] is False


def test_a_refused_host_is_copied_once_the_stack_allows_it(world: World) -> None:
    # Given WaveSpeed moved its outputs to a host the stack does not allow yet
    job_in(world.jobs, JobStatus.STORING)
    world.wavespeed.add(TASK, status="completed", outputs=[OUTPUT.replace(CDN, "https://new-cdn.test")])
    job, _ = store(world)
    assert (job.status, job.error_code) == (JobStatus.FAILED, "OUTPUT_REFUSED")
    assert "OutputHosts" in job.error
    assert "loradrop retry ana-1" in job.error
    # When the host is added to OutputHosts (a redeploy) and the job retried (its store message again)
    settings = world.storer._settings.model_copy(update={"output_hosts": f"{CDN},https://new-cdn.test"})
    world.storer = Storer(
        jobs=world.jobs, s3=world.s3, http=world.http, wavespeed=world.connect, settings=settings, samples=world.samples
    )
    job, _ = store(world)
    # Then the same task's weights are copied: no new task
    assert (job.status, job.prediction_id) == (JobStatus.COMPLETED, TASK)
    assert world.s3.get_object(Bucket="weights", Key=KEY)["ContentLength"] == len(WEIGHTS)
