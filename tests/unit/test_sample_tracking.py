"""A sample's task after its POST, rule by rule: the webhook and the reconciler on its state, adoption by the input
it echoes, the copy of its image and its faults, the gallery once every sample ended, the settling of an uncertain
POST from WaveSpeed's history, and the "Samples Ready" event. moto in process, the fake WaveSpeed and its CDN."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from aws_lambda_powertools import Logger, Metrics

from loradrop.codes import ErrorCode, Outcome
from loradrop.events import SAMPLES_READY, ends_in
from loradrop.job import iso
from loradrop.models import JobStatus, Task
from loradrop.queues import Deferred
from loradrop.redaction import json_for_logs
from loradrop.samples import Sample, SampleStatus, request_body, sample_key
from loradrop.sampling import SampleNotFound
from loradrop.wavespeed import OutcomeUncertain
from tests.unit.conftest import World
from tests.unit.fakes import CDN
from tests.unit.test_sample_rules import IMAGE, TRAINED, completed, handle, queued

Logger(json_serializer=json_for_logs)
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
IMAGE_URL = f"{CDN}/outputs/img-1/0.png"
CARD = "loras/ana-1/model-card.json"


@pytest.fixture
def environment() -> dict[str, str]:
    return {"OUTPUT_HOSTS": CDN, "STORE_MAX_RECEIVES": "3", "RECONCILE_AFTER_SECONDS": "0"}


def rendering(world: World, prompts: tuple[str, ...] = ("p",), **changes: object) -> Sample:
    """ana-1 COMPLETED with a model card; its first sample's task img-1 created."""
    world.clock.now = NOW
    completed(world, list(prompts), model_card_uri=f"s3://weights/{CARD}")
    world.s3.put_object(Bucket="weights", Key=CARD, Body=json.dumps(CARD_BODY).encode())
    world.wavespeed.answer = Task(id="img-1", status="created", created_at=iso(NOW))
    sample = handle(world)
    queued(world)  # the messages so far
    world.wavespeed.tasks["img-1"] = world.wavespeed.tasks["img-1"].model_copy(update=changes)
    return sample


CARD_BODY = {
    "name": "ana",
    "trainer": {"model": "wavespeed-ai/flux-dev-lora-trainer", "task_id": "task-1"},
    "trigger_word": "zxq",
    "trigger_word_used": True,
    "weights": {
        "file": "lora.safetensors",
        "size": 7,
        "sha256": "0" * 64,
        "safetensors": {"valid": False, "problem": "a test's stand-in"},
    },
    "parameters": {"steps": 1000},
    "source": {"bucket": "uploads", "key": "uploads/ana.zip"},
    "timings": {"queued_seconds": 1, "training_seconds": 2, "storing_seconds": 3},
    "dataset": {},
    "warnings": [],
}


def test_a_completed_task_is_copied_with_its_sha256_and_the_gallery_written(world: World) -> None:
    sample = rendering(world)
    world.cdn.body = IMAGE
    world.wavespeed.tasks["img-1"] = world.wavespeed.tasks["img-1"].model_copy(
        update={"status": "completed", "outputs": [IMAGE_URL]}
    )
    # When its webhook comes, signed
    row, outcome = world.tracker.samples.on_webhook(Task(id="img-1"), None, None, None) or (sample, None)
    assert (row.status, outcome) == (SampleStatus.STORING, Outcome.STORING)
    assert queued(world) == [{"job_id": "ana-1", "sample": 0}]
    # And the worker copies it
    done = handle(world)
    digest = hashlib.sha256(IMAGE).hexdigest()
    assert (done.status, done.image_sha256, done.image_size) == (SampleStatus.DONE, digest, len(IMAGE))
    stored = world.s3.get_object(Bucket="weights", Key="loras/ana-1/samples/1.png")
    assert hashlib.sha256(stored["Body"].read()).hexdigest() == digest
    assert (stored["ContentType"], stored["Metadata"]["sha256"]) == ("image/png", digest)
    # Then the job, its card and its README show it (once: a repeat changes nothing)
    job = world.jobs.get("ana-1")
    assert job is not None
    assert job.samples == [done.public()]
    assert job.samples_settled_at is not None
    card = json.loads(world.s3.get_object(Bucket="weights", Key=CARD)["Body"].read())
    assert card["samples"] == [done.public()]
    readme = world.s3.get_object(Bucket="weights", Key="loras/ana-1/README.md")["Body"].read().decode()
    assert f"![zxq, p](samples/1.png)\n\n`zxq, p` (seed {done.seed}, SHA-256 `{digest}`)" in readme
    assert world.samples.finish("ana-1") is False


def test_a_budgeted_sample_is_billed_once_its_image_is_stored(world: World) -> None:
    world.environment |= {"MONTHLY_BUDGET_USD": "5"}
    world.__post_init__()
    world.wavespeed.price = Decimal("0.025")
    rendering(world, status="completed", outputs=[IMAGE_URL])
    world.cdn.body = IMAGE
    world.tracker.samples.on_webhook(Task(id="img-1"), None, None, None)
    done = handle(world)
    month = world.jobs.month_totals(done.budget_month or "")
    assert (done.reserved_usd, month.committed_usd, month.billed_usd) == (None, Decimal("0.025"), Decimal("0.025"))


@pytest.mark.parametrize(("cdn", "code"), [(404, ErrorCode.OUTPUT_GONE), (410, ErrorCode.OUTPUT_GONE)])
def test_an_image_no_longer_served_ends_its_sample(world: World, cdn: int, code: ErrorCode) -> None:
    rendering(world, status="completed", outputs=[IMAGE_URL])
    world.tracker.samples.on_webhook(Task(id="img-1"), None, None, None)
    world.cdn.fail_with = cdn
    sample = handle(world)
    assert (sample.status, sample.error_code) == (SampleStatus.FAILED, code)
    assert world.jobs.get("ana-1").samples[0]["state"] == "failed"  # type: ignore[index,union-attr]


def test_a_flaky_cdn_is_tried_again_then_the_copy_given_up(world: World) -> None:
    rendering(world, status="completed", outputs=[IMAGE_URL])
    world.tracker.samples.on_webhook(Task(id="img-1"), None, None, None)
    world.cdn.fail_with = 503
    with pytest.raises(Deferred):
        handle(world, receive=1)
    assert world.jobs.get_sample(sample_key("ana-1", 0)).status is SampleStatus.STORING  # type: ignore[union-attr]
    with pytest.raises(Deferred):
        handle(world, receive=3)
    sample = world.jobs.get_sample(sample_key("ana-1", 0))
    assert sample is not None
    assert (sample.status, sample.error_code) == (SampleStatus.FAILED, ErrorCode.STORE_FAILED)


def test_a_failed_task_ends_its_sample_with_wavespeeds_code(world: World) -> None:
    rendering(world, status="failed", code=5000, error="internal")
    row, outcome = world.tracker.samples.on_webhook(Task(id="img-1"), None, None, None) or (None, None)
    assert row is not None
    assert (row.status, row.error_code, outcome) == (SampleStatus.ENDING, "5000", Outcome.FAILED)
    # The worker records the end and sums the samples up (the webhook may not write S3)
    assert queued(world) == [{"job_id": "ana-1", "sample": 0}]
    failed = handle(world)
    assert (failed.status, failed.error_code) == (SampleStatus.FAILED, "5000")
    job = world.jobs.get("ana-1")
    assert job is not None
    assert (job.status, job.samples) == (JobStatus.COMPLETED, [failed.public()])


def test_an_end_whose_message_was_lost_is_queued_again_by_the_reconciler(world: World) -> None:
    rendering(world, status="failed", code=5000, error="internal")
    world.tracker.samples.on_webhook(Task(id="img-1"), None, None, None)
    queued(world)  # lost
    assert run(world, timedelta(minutes=1)).get(Outcome.SAMPLE_REQUEUED) == 1
    assert queued(world) == [{"job_id": "ana-1", "sample": 0}]


def test_a_lora_wavespeed_could_not_fetch_says_samples_are_unavailable(world: World) -> None:
    rendering(world, status="failed", code=1402, error="could not download loras[0]")
    row, _ = world.tracker.samples.on_webhook(Task(id="img-1"), None, None, None) or (None, None)
    assert row is not None
    assert (row.status, row.error_code) == (SampleStatus.ENDING, "1402")
    assert row.error == (
        "WaveSpeed task img-1 failed with code 1402: could not download loras[0] (WaveSpeed could not fetch the LoRA "
        "by the link it was given: samples are unavailable for it; the LoRA itself is unaffected)"
    )


def test_an_unrecorded_task_is_adopted_only_by_the_sample_whose_input_it_echoes(world: World) -> None:
    world.clock.now = NOW
    completed(world, ["p"])
    world.wavespeed.answer = OutcomeUncertain("read timeout")
    uncertain = handle(world)
    body = world.wavespeed.posts[0].body
    world.wavespeed.tasks["img-9"] = Task(id="img-9", status="processing", input=body, created_at=iso(NOW))
    # A webhook whose signed input differs (another seed) is no sample's
    with pytest.raises(SampleNotFound):
        world.tracker.samples.on_webhook(Task(id="img-9", input=body | {"seed": 1}), "ana-1", 0, None)
    # A training task's webhook is not the samples' to answer
    assert world.tracker.samples.on_webhook(Task(id="t", input={"data": "https://x/a.zip"}), None, None, None) is None
    # The one it echoes exactly is adopted, even without the URL's hint
    row, outcome = world.tracker.samples.on_webhook(Task(id="img-9", input=body), None, None, None) or (None, None)
    assert row is not None
    assert (row.status, row.prediction_id, outcome) == (SampleStatus.RENDERING, "img-9", Outcome.ADOPTED)
    assert uncertain.submit_digest == row.submit_digest


# --- the reconciler -----------------------------------------------------------------------------------------------


def run(world: World, after: timedelta) -> dict[Outcome, int]:
    world.clock.now = NOW + after
    Metrics().clear_metrics()
    return world.reconciler.run(now=NOW + after)


def test_a_lost_webhook_costs_a_reconciler_run(world: World) -> None:
    rendering(world, status="completed", outputs=[IMAGE_URL])
    assert run(world, timedelta(minutes=1))[Outcome.STORING] == 1
    assert queued(world) == [{"job_id": "ana-1", "sample": 0}]


def uncertain(world: World) -> tuple[Sample, dict[str, object]]:
    world.clock.now = NOW
    completed(world, ["p"])
    world.wavespeed.answer = OutcomeUncertain("read timeout")
    sample = handle(world)
    return sample, world.wavespeed.posts[0].body


def test_an_uncertain_post_whose_task_is_in_the_history_is_adopted(world: World) -> None:
    _, body = uncertain(world)
    world.wavespeed.tasks["img-7"] = Task(id="img-7", status="processing", input=body, created_at=iso(NOW))
    assert run(world, timedelta(minutes=1)).get(Outcome.SUBMITTING) == 1  # its POST may still be answered
    assert run(world, timedelta(minutes=3)).get(Outcome.ADOPTED) == 1
    sample = world.jobs.get_sample(sample_key("ana-1", 0))
    assert sample is not None
    assert (sample.status, sample.prediction_id) == (SampleStatus.RENDERING, "img-7")
    assert len(world.wavespeed.posts) == 1


def test_an_echo_of_another_link_is_still_the_samples_task_by_its_prompt_and_seed(world: World) -> None:
    # WaveSpeed's echo of the LoRA link is undocumented: a re-encoded presigned query must not hide the task
    _, body = uncertain(world)
    echoed = body | {"loras": [{"path": "https://cdn.wavespeed.ai/cache/lora.safetensors", "scale": 1.0}]}
    world.wavespeed.tasks["img-7"] = Task(id="img-7", status="processing", input=echoed, created_at=iso(NOW))
    world.wavespeed.history_input.add("img-7")
    assert run(world, timedelta(minutes=3)).get(Outcome.ADOPTED) == 1
    assert len(world.wavespeed.posts) == 1


def test_a_presigned_link_quoted_in_a_failure_is_never_stored(world: World) -> None:
    link = "https://weights.s3.amazonaws.com/loras/ana-1/lora.safetensors?X-Amz-Signature=abc123&X-Amz-Credential=AK"
    rendering(world, status="failed", code=1402, error=f"could not download {link}")
    row, _ = world.tracker.samples.on_webhook(Task(id="img-1"), None, None, None) or (None, None)
    assert row is not None
    assert "abc123" not in str(row.error)
    assert "abc123" not in json.dumps(row.history)


def test_an_uncertain_post_proven_lost_by_two_complete_reads_is_submitted_again(world: World) -> None:
    _, lost_body = uncertain(world)
    assert run(world, timedelta(minutes=40)).get(Outcome.ABSENT_ONCE) == 1  # past the grace: once is not proof
    assert run(world, timedelta(minutes=50)).get(Outcome.PROVEN_LOST) == 1
    sample = world.jobs.get_sample(sample_key("ana-1", 0))
    assert sample is not None
    assert (sample.status, sample.attempts, sample.lost_submissions) == (SampleStatus.PLANNED, 0, 1)
    assert queued(world) == [{"job_id": "ana-1", "sample": 0}]
    world.wavespeed.answer = Task(id="img-2", status="created")
    again = handle(world)
    assert again.prediction_id == "img-2"  # its one new attempt, with a seed of its own
    assert world.wavespeed.posts[1].body["seed"] == again.seed != lost_body["seed"]
    # And should the lost attempt's task turn up after all, it is recorded and counted, never taken for the new one
    world.wavespeed.tasks["img-1"] = Task(id="img-1", status="completed", input=lost_body)
    # (its webhook's URL lost its hint: the input the lost attempt sent is remembered)
    row, outcome = world.tracker.samples.on_webhook(Task(id="img-1", input=lost_body), None, None, None) or (None, None)
    assert row is not None
    assert outcome is Outcome.STRAY_RECORDED
    after = world.jobs.get_sample(sample_key("ana-1", 0))
    assert after is not None
    assert (after.prediction_id, after.stray_tasks, after.attempts) == ("img-2", ["img-1"], 2)
    assert world.tracker.samples.on_webhook(Task(id="img-1", input=lost_body), "ana-1", 0, None) == (
        after,
        Outcome.UNCHANGED,
    )


def test_an_uncertain_post_whose_history_stays_unreadable_ends_unsettled(world: World) -> None:
    uncertain(world)
    world.wavespeed.history_broken = True
    assert run(world, timedelta(hours=1)).get(Outcome.AMBIGUOUS) == 1
    run(world, timedelta(hours=25))
    sample = world.jobs.get_sample(sample_key("ana-1", 0))
    assert sample is not None
    assert (sample.status, sample.error_code) == (SampleStatus.ENDING, ErrorCode.SUBMIT_UNSETTLED)
    assert f"with seed {sample.seed}" in str(sample.error)
    assert world.jobs.get("ana-1").status is JobStatus.COMPLETED  # type: ignore[union-attr]
    assert len(world.wavespeed.posts) == 1


def test_a_planned_sample_whose_message_was_lost_is_queued_again(world: World) -> None:
    world.clock.now = NOW
    completed(world, ["p"])
    assert run(world, timedelta(minutes=1)).get(Outcome.SAMPLE_REQUEUED) == 1
    assert queued(world) == [{"job_id": "ana-1", "sample": 0}]


# --- the event ----------------------------------------------------------------------------------------------------


def test_samples_settling_on_a_completed_job_is_one_event(world: World) -> None:
    job = {"job_id": {"S": "ana-1"}, "status": {"S": "COMPLETED"}, "source_bucket": {"S": "u"}}
    job |= {"source_key": {"S": "uploads/ana.zip"}, "created_at": {"S": "t"}, "updated_at": {"S": "t"}}
    settled = job | {"samples_settled_at": {"S": "2026-12-07T12:00:00.000Z"}, "samples": {"L": []}}
    records = [
        {"eventName": "MODIFY", "dynamodb": {"SequenceNumber": "1", "OldImage": job, "NewImage": settled}},
        {"eventName": "MODIFY", "dynamodb": {"SequenceNumber": "2", "OldImage": settled, "NewImage": settled}},
    ]
    (end,) = ends_in(records)
    assert (end.detail_type, end.event_id) == (SAMPLES_READY, "ana-1/SAMPLES/2026-12-07T12:00:00.000Z")
    assert request_body("p", 1, TRAINED)["loras"][0]["path"] == TRAINED
