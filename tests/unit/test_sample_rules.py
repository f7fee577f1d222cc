"""The sample images, rule by rule: the prompts as the upload gives them, the input that tells a sample's task apart,
and the worker (StoreWeights) submitting each sample once, under the spending limits, and copying its image. moto in
process, the fake WaveSpeed and its CDN."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aws_lambda_powertools import Logger

from loradrop.codes import ErrorCode
from loradrop.messages import SampleRequest
from loradrop.models import InvalidParameters, JobStatus, Task, TrainingParams
from loradrop.queues import Deferred
from loradrop.redaction import json_for_logs
from loradrop.samples import (
    SAMPLE_MODEL,
    Sample,
    SampleStatus,
    input_digest,
    parse_prompts,
    render_prompt,
    request_body,
    sample_key,
    seed_for,
    split_key,
)
from loradrop.wavespeed import OutcomeUncertain, RateLimited, RequestRejected
from tests.unit.conftest import World
from tests.unit.fakes import CDN
from tests.unit.tables import job_in
from tests.unit.test_template import TEMPLATE

Logger(json_serializer=json_for_logs)
TRAINED = f"{CDN}/outputs/task-1/lora.safetensors"
IMAGE = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 64
WEIGHTS_KEY = "loras/ana-1/lora.safetensors"


@pytest.fixture
def environment() -> dict[str, str]:
    return {"OUTPUT_HOSTS": CDN, "STORE_MAX_RECEIVES": "3"}


def completed(world: World, prompts: list[str], **fields: Any) -> None:
    """Job ana-1 COMPLETED with its weights stored, asking for `prompts`, its samples planned; WaveSpeed still has
    the training task's output."""
    world.s3.put_object(Bucket="weights", Key=WEIGHTS_KEY, Body=b"weights")
    params = {"trigger_word": "zxq", "sample_prompts": prompts}
    job = job_in(world.jobs, JobStatus.COMPLETED, params=params, weights_uri=f"s3://weights/{WEIGHTS_KEY}", **fields)
    world.wavespeed.add("task-1", status="completed", outputs=[TRAINED])
    world.samples.plan(job)


def set_status(world: World, status: JobStatus) -> None:
    world.db.update_item(
        TableName="jobs",
        Key={"job_id": {"S": "ana-1"}},
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": {"S": status.value}},
    )


def handle(world: World, index: int = 0, receive: int = 1) -> Sample:
    world.samples.handle(SampleRequest(job_id="ana-1", sample=index), receive, remaining_seconds=900)
    sample = world.jobs.get_sample(sample_key("ana-1", index))
    assert sample is not None
    return sample


def queued(world: World) -> list[dict[str, Any]]:
    answer = world.sqs.receive_message(QueueUrl=world.queues.store, MaxNumberOfMessages=10)
    return [json.loads(message["Body"]) for message in answer.get("Messages", [])]


# --- the prompts and the input ------------------------------------------------------------------------------------


def test_prompts_are_split_trimmed_and_limited() -> None:
    assert parse_prompts(" a {trigger} | |b ") == ("a {trigger}", "b")
    assert parse_prompts("") == ()
    with pytest.raises(ValueError, match="5 prompts"):
        parse_prompts("a|b|c|d|e")
    with pytest.raises(ValueError, match="too long"):
        parse_prompts("x" * 501)
    # An upload's mistake there costs its samples, never its training
    params, warnings = TrainingParams.from_metadata({"sample-prompts": "a|b|c|d|e", "steps": "1500"}, TrainingParams())
    assert (params.sample_prompts, params.steps) == ((), 1500)
    assert warnings == [
        "sample-prompts ignored (5 prompts): it must be at most 4 prompts separated by |, each at most 500 characters; "
        "no sample images"
    ]
    # The stack's SamplePrompts is held to the same rule at deploy time (CloudFormation's AllowedPattern)
    pattern = re.compile(TEMPLATE["Parameters"]["SamplePrompts"]["AllowedPattern"])
    assert pattern.fullmatch("a {trigger} | b | c |" + "d" * 500)
    assert pattern.fullmatch("")
    for refused in ("a|b|c|d|e", "x" * 501, "a\x7fb", "a\nb"):
        assert not pattern.fullmatch(refused), refused
    with pytest.raises(InvalidParameters):
        TrainingParams.build({"sample_prompts": "a|b|c|d|e"})


def test_the_trigger_word_is_put_in_or_in_front() -> None:
    assert render_prompt("a photo of {trigger} at sea", "zxq") == "a photo of zxq at sea"
    assert render_prompt("a castle at dusk", "zxq") == "zxq, a castle at dusk"
    assert render_prompt("ZXQ smiling", "zxq") == "ZXQ smiling"


def test_each_sample_has_its_own_key_and_fixed_seed() -> None:
    assert split_key(sample_key("ana-1", 3)) == ("ana-1", 3)
    assert split_key("ana-1") is None
    assert split_key("budget#2026-12") is None
    assert seed_for("ana-1", 0) == seed_for("ana-1", 0) != seed_for("ana-1", 1) != seed_for("bob-2", 1)


def test_a_task_is_told_by_the_link_prompt_and_seed_it_echoes() -> None:
    body = request_body("zxq at sea", 42, "https://cdn/lora.safetensors")
    echoed = json.loads(json.dumps(body))  # as WaveSpeed's input carries it
    assert input_digest(echoed) == input_digest(body) is not None
    assert input_digest(body | {"seed": 43}) != input_digest(body)
    assert input_digest({"prompt": "p", "seed": 1}) is None  # no LoRA: not a sample's task
    assert input_digest(body | {"seed": True}) is None


# --- submitting ---------------------------------------------------------------------------------------------------


def test_a_sample_is_posted_once_with_wavespeeds_own_link_to_the_lora(world: World) -> None:
    completed(world, ["a photo of {trigger} at sea"])
    world.wavespeed.answer = Task(id="img-1", status="created")
    sample = handle(world)
    (post,) = world.wavespeed.posts
    assert post.model == SAMPLE_MODEL
    assert post.body["prompt"] == "a photo of zxq at sea"
    assert post.body["loras"] == [{"path": TRAINED, "scale": 1.0}]
    assert post.body["seed"] == seed_for("ana-1", 0) == sample.seed
    assert parse_qs(urlsplit(post.webhook).query) == {"job": ["ana-1"], "sample": ["0"]}
    assert (sample.status, sample.prediction_id, sample.attempts) == (SampleStatus.RENDERING, "img-1", 1)
    assert (sample.submit_digest, sample.lora_source) == (input_digest(post.body), "wavespeed")
    # A repeated message finds it rendering: no second task
    handle(world)
    assert len(world.wavespeed.posts) == 1


def test_a_lora_wavespeed_no_longer_serves_is_linked_from_the_stored_copy(world: World) -> None:
    completed(world, ["p"])
    world.wavespeed.gone.add("task-1")
    sample = handle(world)
    link = urlsplit(world.wavespeed.posts[0].body["loras"][0]["path"])
    assert link.path.endswith(WEIGHTS_KEY)
    assert "Signature=" in link.query  # presigned (SigV2 or SigV4, as the client signs)
    assert sample.lora_source == "s3"


def test_a_rate_limited_post_gives_the_claim_back_and_comes_again(world: World) -> None:
    completed(world, ["p"])
    world.wavespeed.answer = RateLimited("429", status=429)
    with pytest.raises(Deferred):
        handle(world)
    sample = world.jobs.get_sample(sample_key("ana-1", 0))
    assert sample is not None
    assert (sample.status, sample.attempts, sample.submit_digest) == (SampleStatus.PLANNED, 0, None)


def test_a_refused_post_ends_the_sample_and_never_the_job(world: World) -> None:
    completed(world, ["p"])
    world.wavespeed.answer = RequestRejected("loras[0].path must be a model id", status=400, code=1401)
    sample = handle(world)
    assert (sample.status, sample.error_code, sample.attempts) == (SampleStatus.FAILED, "1401", 0)
    assert "the LoRA itself is unaffected" in str(sample.error)
    job = world.jobs.get("ana-1")
    assert job is not None
    assert job.status is JobStatus.COMPLETED
    assert job.samples == [sample.public()]  # its only sample ended: summed up at once


def test_a_post_without_an_answer_is_never_sent_again(world: World) -> None:
    completed(world, ["p"])
    world.wavespeed.answer = OutcomeUncertain("read timeout")
    sample = handle(world)
    assert (sample.status, sample.error_code, sample.attempts) == (SampleStatus.SUBMITTING, "SUBMIT_UNCERTAIN", 1)
    handle(world)
    assert len(world.wavespeed.posts) == 1


def test_a_sample_over_max_job_usd_is_refused_before_any_task(world: World) -> None:
    world.environment |= {"MAX_JOB_USD": "1.04"}
    world.__post_init__()
    completed(world, ["p", "q"], quote_usd=Decimal("1.00"))
    world.wavespeed.price = Decimal("0.025")  # 1.00 + 2 x 0.025 > 1.04
    sample = handle(world)
    assert (sample.status, sample.error_code) == (SampleStatus.FAILED, ErrorCode.OVER_BUDGET)
    assert sample.error == "training and 2 sample(s) would cost 1.050 USD, over MaxJobUsd 1.04"
    assert world.wavespeed.posts == []


def test_a_sample_without_a_price_under_a_limit_waits_then_leaves_it_to_the_reconciler(world: World) -> None:
    world.environment |= {"MONTHLY_BUDGET_USD": "5"}
    world.__post_init__()
    completed(world, ["p"])
    world.wavespeed.price = OutcomeUncertain("pricing down")
    with pytest.raises(Deferred, match="no price for the sample yet"):
        handle(world, receive=1)
    sample = handle(world, receive=3)  # done with: the store queue's receives are for copies
    assert (sample.status, sample.attempts) == (SampleStatus.PLANNED, 0)
    assert world.wavespeed.posts == []


def test_the_month_reserves_each_sample_and_refuses_one_it_has_no_room_for(world: World) -> None:
    world.environment |= {"MONTHLY_BUDGET_USD": "1"}
    world.__post_init__()
    completed(world, ["p", "q"])
    world.wavespeed.price = Decimal("0.6")
    first = handle(world, 0)
    second = handle(world, 1)
    assert (first.status, first.reserved_usd) == (SampleStatus.RENDERING, Decimal("0.6"))
    assert (second.status, second.error_code) == (SampleStatus.FAILED, ErrorCode.BUDGET_EXHAUSTED)
    month = world.jobs.month_totals(first.budget_month or "")
    assert (month.committed_usd, month.billed_usd) == (Decimal("0.6"), 0)
    assert len(world.wavespeed.posts) == 1


def test_samples_wait_for_their_job_and_end_with_a_job_that_failed(world: World) -> None:
    completed(world, ["p"])
    set_status(world, JobStatus.STORING)  # as while its weights are copied
    with pytest.raises(Deferred, match="has not completed"):
        handle(world)
    set_status(world, JobStatus.FAILED)
    world.db.update_item(  # a copy that failed: `loradrop retry` may still complete the job
        TableName="jobs",
        Key={"job_id": {"S": "ana-1"}},
        UpdateExpression="SET error_code = :c",
        ExpressionAttributeValues={":c": {"S": "STORE_FAILED"}},
    )
    assert handle(world).status is SampleStatus.PLANNED
    world.db.update_item(  # a training WaveSpeed refused: nothing to render with, ever
        TableName="jobs",
        Key={"job_id": {"S": "ana-1"}},
        UpdateExpression="SET error_code = :c",
        ExpressionAttributeValues={":c": {"S": "1200"}},
    )
    sample = handle(world)
    assert (sample.status, sample.error_code) == (SampleStatus.FAILED, ErrorCode.NOT_TRAINED)
    assert world.wavespeed.posts == []


def test_a_claim_from_a_snapshot_older_than_a_lost_post_is_refused(world: World) -> None:
    # Given a worker that read the sample before one of its POSTs was proven lost (its next attempt has a seed of its
    # own): its claim would re-send the lost attempt's exact input, which nothing could then tell from its stray
    completed(world, ["p"])
    stale = world.jobs.get_sample(sample_key("ana-1", 0))
    assert stale is not None
    world.db.update_item(
        TableName="jobs",
        Key={"job_id": {"S": sample_key("ana-1", 0)}},
        UpdateExpression="SET lost_submissions = :one",
        ExpressionAttributeValues={":one": {"N": "1"}},
    )
    world.jobs.get_sample = lambda key: stale  # type: ignore[method-assign]
    world.samples.handle(SampleRequest(job_id="ana-1", sample=0), 1, remaining_seconds=900)
    del world.jobs.get_sample
    # Then nothing was claimed or sent
    assert world.wavespeed.posts == []
    row = world.jobs.get_sample(sample_key("ana-1", 0))
    assert row is not None
    assert (row.status, row.attempts, row.lost_submissions) == (SampleStatus.PLANNED, 0, 1)
