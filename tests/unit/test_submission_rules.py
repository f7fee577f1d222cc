"""Submitter, rule by rule: every outcome of a submission (created, refused, rate limited, uncertain,
no connection) and every reason an upload is refused before paying. moto in process for S3 and
DynamoDB, a fake WaveSpeed that answers as told and records what it was sent."""

from __future__ import annotations

from typing import Any

import pytest
from aws_lambda_powertools import Logger

from loradrop.models import JobStatus, Task
from loradrop.redaction import json_for_logs
from loradrop.submission import RetryLater, UploadRef
from loradrop.wavespeed import OutcomeUncertain, RateLimited, RequestRejected, TransientError, WaveSpeedError
from loradrop_local.dataset import training_zip
from tests.unit.conftest import World

Logger(json_serializer=json_for_logs)


def upload(world: World, body: bytes, metadata: dict[str, str] | None = None) -> UploadRef:
    answer = world.s3.put_object(Bucket="uploads", Key="uploads/ana.zip", Body=body, Metadata=metadata or {})
    return UploadRef("uploads", "uploads/ana.zip", None, answer["ETag"].strip('"'), len(body))


def test_a_created_task_is_recorded_with_one_attempt(world: World) -> None:
    job = world.submitter.accept_upload(upload(world, training_zip()))
    assert (job.status, job.prediction_id, job.attempts) == (JobStatus.SUBMITTED, "task-1", 1)
    (post,) = world.wavespeed.posts
    assert post.webhook == f"https://hooks.test/webhooks/wavespeed?job={job.job_id}"
    assert post.body["trigger_word"] == "p3r5on"  # the stack's default, as nothing else was asked
    assert "uploads/ana.zip" in post.body["data"]  # the presigned link to the ZIP


def test_a_repeated_notification_makes_no_second_task(world: World) -> None:
    ref = upload(world, training_zip())
    first = world.submitter.accept_upload(ref)
    again = world.submitter.accept_upload(ref)
    assert (again.job_id, again.status) == (first.job_id, JobStatus.SUBMITTED)
    assert len(world.wavespeed.posts) == 1


@pytest.mark.parametrize(
    ("answer", "rate_limited"),
    [(RateLimited("429 too many requests", status=429), True), (TransientError("connection refused"), False)],
)
def test_nothing_created_means_try_again_later_with_the_attempt_given_back(
    world: World, answer: WaveSpeedError, rate_limited: bool
) -> None:
    world.wavespeed.answer = answer
    ref = upload(world, training_zip())
    with pytest.raises(RetryLater) as later:
        world.submitter.accept_upload(ref)
    assert later.value.rate_limited is rate_limited
    job = world.jobs.get(ref.job_id)
    assert (job.status, job.attempts) == (JobStatus.RECEIVED, 0)


def test_a_refusal_fails_the_job_with_wavespeeds_reason_and_no_attempt_counted(world: World) -> None:
    world.wavespeed.answer = RequestRejected("invalid parameter: steps", status=400, code=1401)
    job = world.submitter.accept_upload(upload(world, training_zip()))
    assert (job.status, job.error_code, job.attempts) == (JobStatus.FAILED, "1401", 0)
    assert "WaveSpeed refused the task (HTTP 400): invalid parameter: steps" in job.error


def test_an_uncertain_answer_is_never_resent_and_is_left_for_settling(world: World) -> None:
    world.wavespeed.answer = OutcomeUncertain("HTTP 502 after the request was sent", status=502)
    ref = upload(world, training_zip())
    job = world.submitter.accept_upload(ref)
    assert (job.status, job.error_code, job.attempts) == (JobStatus.SUBMITTING, "SUBMIT_UNCERTAIN", 1)
    assert job.submit_url_sha256  # what settling matches WaveSpeed's records against
    assert world.submitter.accept_upload(ref).status is JobStatus.SUBMITTING  # a redelivery sends nothing
    assert len(world.wavespeed.posts) == 1


@pytest.mark.parametrize(
    ("body", "metadata", "code"),
    [
        (b"not a zip at all", {}, "INVALID_UPLOAD"),
        (training_zip(), {"steps": "many"}, "INVALID_PARAMETERS"),
        (training_zip(), {"lora-rank": "4096"}, "INVALID_PARAMETERS"),
    ],
    ids=["not-a-zip", "steps-not-a-number", "rank-out-of-range"],
)
def test_bad_input_is_rejected_before_paying(world: World, body: bytes, metadata: dict[str, str], code: str) -> None:
    job = world.submitter.accept_upload(upload(world, body, metadata))
    assert (job.status, job.error_code) == (JobStatus.REJECTED, code)
    assert job.error
    assert world.wavespeed.posts == []


def test_an_upload_deleted_before_it_is_read_is_rejected_with_what_to_do(world: World) -> None:
    ref = upload(world, training_zip())
    world.s3.delete_object(Bucket="uploads", Key="uploads/ana.zip")
    job = world.submitter.accept_upload(ref)
    assert (job.status, job.error_code) == (JobStatus.REJECTED, "INVALID_UPLOAD")
    assert "upload it again" in job.error


def test_retry_resubmits_only_what_a_new_upload_would_not_fix(world: World) -> None:
    world.wavespeed.answer = RequestRejected("account suspended", status=403)
    job = world.submitter.accept_upload(upload(world, training_zip()))
    assert job.status is JobStatus.FAILED
    world.wavespeed.answer = Task(id="task-2", model="m", status="created")
    retried = world.submitter.retry(job.job_id)
    # A refusal is the user's to fix (a new upload, or the account): `loradrop retry` leaves it
    assert retried is None or retried.status is JobStatus.FAILED
    assert len(world.wavespeed.posts) == 1


def test_a_poor_dataset_is_surveyed_recorded_and_trained_under_the_warn_policy(world: World) -> None:
    job = world.submitter.accept_upload(upload(world, training_zip(images=2)))
    assert job.status is JobStatus.SUBMITTED
    assert job.dataset is not None
    assert (job.dataset["images"], job.dataset["small"], job.dataset["formats"]) == (2, 2, {"PNG": 2})
    assert any(w.startswith("only 2 distinct usable image(s)") for w in job.warnings)
    assert any("2 image(s) under 512 px on the shorter side" in w for w in job.warnings)
    assert job.archive is not None
    assert job.archive["range_reads"] == 1  # a small archive: the tail read holds all of it
    assert 0 < job.archive["survey_bytes_per_image_max"] <= job.archive["bytes_read"]
    assert len(world.wavespeed.posts) == 1


def test_a_dataset_unfit_to_train_on_is_rejected_under_the_strict_policy(world: World) -> None:
    submitter = world.submitter
    submitter._settings = submitter._settings.model_copy(update={"dataset_policy": "strict"})
    job = submitter.accept_upload(upload(world, training_zip(images=3)))
    assert (job.status, job.error_code) == (JobStatus.REJECTED, "INVALID_DATASET")
    assert "only 3 distinct usable image(s): WaveSpeed's trainer wants at least 4" in job.error
    assert "DatasetPolicy is strict" in job.error
    assert job.dataset is not None
    assert job.dataset["usable"] == 3  # what was found stays on the job for `loradrop status`
    assert any("3 image(s) under 512 px on the shorter side" in w for w in job.warnings)  # and the other findings
    assert world.wavespeed.posts == []


def test_a_healthy_dataset_passes_the_strict_policy(world: World) -> None:
    submitter = world.submitter
    submitter._settings = submitter._settings.model_copy(update={"dataset_policy": "strict"})
    job = submitter.accept_upload(upload(world, training_zip(images=5, size=640, kind="JPEG")))
    assert job.status is JobStatus.SUBMITTED
    assert job.warnings == []
    assert job.dataset is not None
    assert job.dataset["smallest"] == "640x640"


def strict(world: World) -> None:
    world.submitter._settings = world.submitter._settings.model_copy(update={"dataset_policy": "strict"})


def test_captions_are_checked_for_the_trigger_word_the_upload_asks_for(world: World) -> None:
    # Given captions that say "p3r5on" (the stack's default) but an upload that asks for "zxq"
    job = world.submitter.accept_upload(
        upload(world, training_zip(images=5, size=640, kind="JPEG"), {"trigger-word": "zxq"})
    )
    # Then under warn it trains, and the job says why the LoRA will not answer to "zxq"
    assert job.status is JobStatus.SUBMITTED
    assert any(w.startswith("no caption mentions the trigger word 'zxq'") for w in job.warnings)
    assert job.dataset is not None
    assert job.archive is not None
    assert (job.dataset["captions_with_text"], job.dataset["captions_mentioning_trigger"]) == (5, 0)
    assert job.archive["captions_read"] == 5
    assert 0 < job.archive["caption_bytes_read"] <= job.archive["survey_bytes_read"]
    # The tail, then at most a request per image: each caption came with its neighbour
    assert job.archive["survey_range_reads"] == job.archive["range_reads"] - 1 <= 5


def test_captions_that_never_name_the_trigger_word_are_rejected_under_strict_before_any_post(world: World) -> None:
    strict(world)
    job = world.submitter.accept_upload(
        upload(world, training_zip(images=5, size=640, kind="JPEG"), {"trigger-word": "zxq"})
    )
    assert (job.status, job.error_code) == (JobStatus.REJECTED, "INVALID_DATASET")
    assert "no caption mentions the trigger word 'zxq'" in job.error
    assert world.wavespeed.posts == []


def test_captions_are_not_held_to_the_stacks_default_trigger_word_nobody_asked_for(world: World) -> None:
    # Given captions in the user's own words and no trigger word asked for: the captions are the point
    strict(world)
    captioned = training_zip(images=5, size=640, kind="JPEG", trigger_word="a woman")
    job = world.submitter.accept_upload(upload(world, captioned))
    assert job.status is JobStatus.SUBMITTED
    assert not any("trigger word" in w for w in job.warnings)
    assert job.dataset is not None
    assert "captions_mentioning_trigger" not in job.dataset


def test_with_bad_parameters_an_unfit_set_is_still_refused_for_its_dataset_first(world: World) -> None:
    strict(world)
    unfit = world.submitter.accept_upload(upload(world, training_zip(images=3), {"steps": "many"}))
    assert unfit.error_code == "INVALID_DATASET"
    world.s3.delete_object(Bucket="uploads", Key="uploads/ana.zip")
    fit = world.submitter.accept_upload(upload(world, training_zip(images=5, size=640, kind="JPEG"), {"steps": "many"}))
    assert (fit.error_code, fit.error) == (
        "INVALID_PARAMETERS",
        "invalid training parameters: steps='many' is invalid: must be a whole number from 1000 to 10000",
    )


def test_a_retry_that_met_a_429_carries_on_when_its_message_comes_back(world: World) -> None:
    # Given a job that ended FAILED with a retryable WaveSpeed code
    ref = upload(world, training_zip())
    world.wavespeed.answer = RequestRejected("unavailable", status=400, code=5003)
    failed = world.submitter.accept_upload(ref)
    assert (failed.status, failed.error_code) == (JobStatus.FAILED, "5003")
    # When a person retries it and WaveSpeed answers 429: the job is back in RECEIVED, the message redelivered
    world.wavespeed.answer = RateLimited("429", status=429)
    with pytest.raises(RetryLater):
        world.submitter.retry(ref.job_id)
    assert world.jobs.get(ref.job_id).status is JobStatus.RECEIVED
    world.wavespeed.answer = Task(id="task-2", model="m", status="created")
    retried = world.submitter.retry(ref.job_id)
    # Then the redelivered retry submits it instead of being dropped
    assert (retried.status, retried.prediction_id, retried.attempts) == (JobStatus.SUBMITTED, "task-2", 1)
    assert len(world.wavespeed.posts) == 3


def test_a_secret_that_cannot_be_read_leaves_the_job_received_never_uncertain(world: World) -> None:
    from loradrop.credentials import CredentialsError

    # Given the WaveSpeed secret cannot be read (Secrets Manager down, or the secret malformed)
    def no_key() -> Any:
        raise CredentialsError("secret loradrop/wavespeed must be JSON with a non-empty string 'api_key'")

    world.submitter._wavespeed = no_key
    ref = upload(world, training_zip())
    # When the upload is taken
    with pytest.raises(RetryLater, match="API key could not be read"):
        world.submitter.accept_upload(ref)
    # Then nothing was sent, and the job waits for the next delivery in RECEIVED, with no attempt counted
    job = world.jobs.get(ref.job_id)
    assert (job.status, job.attempts, job.error_code) == (JobStatus.RECEIVED, 0, None)
    assert world.wavespeed.posts == []


def test_a_post_that_could_not_be_answered_in_the_invocations_time_is_not_sent(world: World) -> None:
    from loradrop.deadline import Deadline

    ref = upload(world, training_zip())
    # 5 s for its price, 70 s of SDK timeouts (connect 10 + read 60) and 15 s for the writes do not fit in 80 s
    with pytest.raises(RetryLater, match="a POST needs 90 s"):
        world.submitter.accept_upload(ref, Deadline.within(80))
    job = world.jobs.get(ref.job_id)
    assert (job.status, job.attempts) == (JobStatus.RECEIVED, 0)
    assert world.wavespeed.posts == []
    # with the time, the redelivered message submits it
    assert world.submitter.accept_upload(ref, Deadline.within(100)).status is JobStatus.SUBMITTED
