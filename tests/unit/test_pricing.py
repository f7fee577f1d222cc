"""The price before paying, rule by rule: a quote on every job, MaxJobUsd, MonthlyBudgetUsd reserved and given
back with the job's moves, and the balance. moto in process for S3 and DynamoDB, a fake WaveSpeed that prices
and answers as told."""

from __future__ import annotations

import contextlib
import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from aws_lambda_powertools import Logger

from loradrop.budgets import BudgetExhausted, month_of
from loradrop.codes import ErrorCode, Outcome
from loradrop.deadline import Deadline
from loradrop.job import HistoryEntry, Job, iso, utc_now
from loradrop.models import JobStatus, Task
from loradrop.redaction import json_for_logs
from loradrop.submission import RetryLater, UploadRef
from loradrop.wavespeed import OutcomeUncertain, RateLimited, RequestRejected, TransientError
from loradrop_local.aws.moto_front import make_dynamodb_atomic
from loradrop_local.dataset import training_zip
from tests.unit.conftest import World

Logger(json_serializer=json_for_logs)


@pytest.fixture
def environment() -> dict[str, str]:
    return {"MAX_JOB_USD": "2.50", "MONTHLY_BUDGET_USD": "3"}


def upload(world: World, name: str = "ana", metadata: dict[str, str] | None = None) -> UploadRef:
    body = training_zip()
    key = f"uploads/{name}.zip"
    answer = world.s3.put_object(Bucket="uploads", Key=key, Body=body, Metadata=metadata or {})
    return UploadRef("uploads", key, None, answer["ETag"].strip('"'), len(body))


def month(world: World) -> tuple[Decimal, Decimal]:
    totals = world.jobs.month_totals(month_of(utc_now()))
    return totals.committed_usd, totals.billed_usd


def test_the_quote_is_asked_for_the_exact_body_posted_and_recorded(world: World) -> None:
    world.wavespeed.price = Decimal("1.25")
    job = world.submitter.accept_upload(upload(world))
    assert (job.status, job.quote_usd, job.budget_month) == (JobStatus.SUBMITTED, Decimal("1.25"), month_of(utc_now()))
    (quoted,) = world.wavespeed.quotes
    (post,) = world.wavespeed.posts
    assert (quoted.model, quoted.body) == (post.model, post.body)
    assert job.public()["quote_usd"] == 1.25
    assert month(world) == (Decimal("1.25"), 0)


def test_a_quote_over_max_job_usd_is_rejected_with_nothing_posted(world: World) -> None:
    world.wavespeed.price = Decimal("2.51")
    job = world.submitter.accept_upload(upload(world, metadata={"steps": "2510"}))
    assert (job.status, job.error_code, job.quote_usd, job.attempts) == (
        JobStatus.REJECTED,
        ErrorCode.OVER_BUDGET,
        Decimal("2.51"),
        0,
    )
    assert "quotes 2.51 USD for this job (2510 steps on wavespeed-ai/flux-dev-lora-trainer)" in (job.error or "")
    assert "MaxJobUsd of 2.50 USD" in (job.error or "")
    assert world.wavespeed.posts == []
    assert month(world) == (0, 0)


def test_a_month_without_room_rejects_the_job_that_would_pass_it(world: World) -> None:
    world.wavespeed.price = Decimal("1.25")
    first = world.submitter.accept_upload(upload(world, "one"))
    second = world.submitter.accept_upload(upload(world, "two"))
    third = world.submitter.accept_upload(upload(world, "three"))  # 1.25 + 1.25 + 1.25 > 3
    assert [job.status for job in (first, second, third)] == [JobStatus.SUBMITTED] * 2 + [JobStatus.REJECTED]
    assert (third.error_code, third.quote_usd, third.attempts) == (ErrorCode.BUDGET_EXHAUSTED, Decimal("1.25"), 0)
    assert third.error is not None
    assert "(" + month_of(utc_now()) + ": MonthlyBudgetUsd 3.00 USD, of which 2.50 USD is committed)" in third.error
    assert len(world.wavespeed.posts) == 2
    assert month(world) == (Decimal("2.50"), 0)


@pytest.mark.parametrize(
    "answer",
    [RateLimited("429 too many requests", status=429), RequestRejected("bad key", status=401, code=401)],
)
def test_an_attempt_wavespeed_proves_created_nothing_gives_its_reservation_back(
    world: World, answer: Exception
) -> None:
    world.wavespeed.answer = answer  # type: ignore[assignment]
    ref = upload(world)
    with contextlib.suppress(RetryLater):  # a 429 defers; a refusal ends the job
        world.submitter.accept_upload(ref)
    job = world.jobs.get(ref.job_id)
    assert job is not None
    assert (job.attempts, job.reserved_usd) == (0, None)
    assert month(world) == (0, 0)


def test_an_uncertain_attempt_keeps_its_reservation_and_a_completed_one_is_billed(world: World) -> None:
    world.wavespeed.answer = TransientError("refused")  # first: certain, given back
    ref = upload(world)
    with pytest.raises(RetryLater):
        world.submitter.accept_upload(ref)
    world.wavespeed.answer = Task(id="task-1", status="created")
    job = world.submitter.accept_upload(ref)
    assert month(world) == (Decimal("1.00"), 0)
    world.jobs.start_training(job.job_id)
    storing = world.jobs.start_storing(job.job_id).job
    assert storing is not None
    world.jobs.complete(storing, {"weights_uri": "s3://w/k"})
    assert month(world) == (Decimal("1.00"), Decimal("1.00"))


def test_no_quote_with_a_limit_set_waits_and_records_why(world: World) -> None:
    world.wavespeed.price = TransientError("pricing unavailable")
    ref = upload(world)
    job = world.submitter.accept_upload(ref)
    assert (job.status, job.error_code, job.attempts) == (JobStatus.RECEIVED, ErrorCode.QUOTE_UNAVAILABLE, 0)
    assert world.wavespeed.posts == []
    # Priced again later: it goes, and the reason it waited is gone
    world.wavespeed.price = Decimal(1)
    done = world.submitter.accept_upload(ref)
    assert (done.status, done.error_code, done.error) == (JobStatus.SUBMITTED, None, None)


@pytest.mark.parametrize("environment", [{}])
def test_no_quote_without_a_limit_is_a_warning_and_the_job_goes_on(world: World) -> None:
    world.wavespeed.price = TransientError("pricing unavailable")
    job = world.submitter.accept_upload(upload(world))
    assert (job.status, job.quote_usd) == (JobStatus.SUBMITTED, None)
    assert any(w.startswith("WaveSpeed gave no price for this task (pricing unavailable)") for w in job.warnings)


def test_a_balance_below_the_quote_waits_until_topped_up(world: World) -> None:
    world.wavespeed.account_balance = Decimal("0.40")
    ref = upload(world)
    world.submitter.accept_upload(ref)  # its message is done with: no retry storm while a person tops up
    job = world.submitter.accept_upload(ref)  # tried again (the reconciler queues it): the reason noted once
    assert (job.status, job.error_code) == (JobStatus.RECEIVED, ErrorCode.INSUFFICIENT_BALANCE)
    assert "WaveSpeed's balance (0.40 USD) is below this job's quote (1.00 USD): top up" in (job.error or "")
    assert [entry.note for entry in job.history].count("waiting: [INSUFFICIENT_BALANCE]") == 1
    assert world.wavespeed.posts == []
    world.wavespeed.account_balance = Decimal(50)
    assert world.submitter.accept_upload(ref).status is JobStatus.SUBMITTED


def test_the_reconciler_queues_a_waiting_job_again_once_it_has_been_left_alone(world: World) -> None:
    world.wavespeed.account_balance = Decimal(0)
    job = world.submitter.accept_upload(upload(world))
    assert job.error_code == ErrorCode.INSUFFICIENT_BALANCE
    # Within the settle deadline, a pass after 2 x ReconcileAfterSeconds sends it to SubmitTraining again
    later = datetime.now(UTC) + timedelta(hours=1)
    assert world.reconciler.run(now=later)[Outcome.RESUBMISSION_REQUEUED] == 1
    sent = world.sqs.receive_message(QueueUrl=world.queues.intake, MaxNumberOfMessages=10).get("Messages", [])
    assert [json.loads(m["Body"]) for m in sent] == [{"job_id": job.job_id, "action": "resubmit"}]
    # Past the deadline it ends with the wait's own code and reason
    ended = world.reconciler.run(now=later + timedelta(days=2))
    assert ended[Outcome.FAILED] == 1
    failed = world.jobs.get(job.job_id)
    assert failed is not None
    assert (failed.status, failed.error_code) == (JobStatus.FAILED, ErrorCode.INSUFFICIENT_BALANCE)
    assert "top up the WaveSpeed account" in (failed.error or "")


def test_an_unreadable_balance_does_not_stop_a_job(world: World) -> None:
    world.wavespeed.account_balance = TransientError("404 on both balance paths")
    assert world.submitter.accept_upload(upload(world)).status is JobStatus.SUBMITTED


def test_a_wait_past_the_settle_deadline_ends_failed_with_its_own_code(world: World) -> None:
    world.wavespeed.account_balance = Decimal(0)
    ref = upload(world)
    world.submitter.accept_upload(ref)
    # The job entered RECEIVED two days ago (the deadline is a day)
    job = world.jobs.get(ref.job_id)
    assert job is not None
    long_ago = iso(datetime.now(UTC) - timedelta(days=2))
    world.db.update_item(
        TableName="jobs",
        Key={"job_id": {"S": job.job_id}},
        UpdateExpression="SET history = :h",
        ExpressionAttributeValues={
            ":h": {
                "L": [
                    {
                        "M": {
                            k: {"S": v}
                            for k, v in HistoryEntry(status="RECEIVED", at=long_ago)
                            .model_dump(exclude_none=True)
                            .items()
                        }
                    }
                ]
            }
        },
    )
    ended = world.submitter.accept_upload(ref)
    assert (ended.status, ended.error_code) == (JobStatus.FAILED, ErrorCode.INSUFFICIENT_BALANCE)
    assert ended.error is not None
    assert ended.error.endswith(f"Gave up after 24 hours: `loradrop retry {job.job_id}` once that is mended")
    assert world.wavespeed.posts == []


def test_a_lost_attempt_gives_its_reservation_back_and_its_task_turning_up_after_all_takes_it_again(
    world: World,
) -> None:
    # An uncertain POST keeps its reservation: a task may exist
    world.wavespeed.answer = OutcomeUncertain("no answer after sending the task")
    lost = world.submitter.accept_upload(upload(world))
    assert (lost.status, lost.reserved_usd) == (JobStatus.SUBMITTING, Decimal("1.00"))
    assert month(world) == (Decimal("1.00"), 0)
    # WaveSpeed's history proves the attempt created nothing: the reservation goes back with the move
    back = world.jobs.submission_lost(lost, "history proves nothing was created")
    assert back.job is not None
    assert (back.job.status, back.job.attempts, back.job.reserved_usd) == (JobStatus.RECEIVED, 0, None)
    assert month(world) == (0, 0)
    # Its task turns up after all: paid for, so the month holds it again
    recorded = world.jobs.record_stray_task(back.job, "task-1", "it turned up", counted=True)
    assert recorded.done
    assert month(world) == (Decimal("1.00"), 0)


def test_submitters_racing_for_one_month_never_pass_its_limit_together(world: World) -> None:
    # moto checks a condition and writes in two steps; DynamoDB (and the local stack's moto) does both at once
    make_dynamodb_atomic()
    # Eight jobs ready at once, each quoted 1.00 against 3 USD: three reservations fit, whatever the order
    now = utc_now()
    for i in range(8):
        world.jobs.claim(
            Job(
                job_id=f"job-{i}",
                status=JobStatus.RECEIVED,
                source_bucket="b",
                source_key=f"k{i}",
                created_at=now,
                updated_at=now,
            )
        )

    def begin(i: int) -> str:
        try:
            moved = world.jobs.begin_submission(
                f"job-{i}",
                found={},
                params={},
                warnings=[],
                link=f"L{i}",
                at=now,
                quote=Decimal(1),
                monthly_limit=Decimal(3),
            )
        except BudgetExhausted:
            return "exhausted"
        return "reserved" if moved.done else "refused"

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(begin, range(8)))
    assert sorted(results) == ["exhausted"] * 5 + ["reserved"] * 3
    assert month(world) == (Decimal(3), 0)


def test_a_task_taken_back_after_its_attempt_was_given_up_is_billed_when_it_completes(world: World) -> None:
    world.wavespeed.answer = OutcomeUncertain("no answer after sending the task")
    lost = world.submitter.accept_upload(upload(world))
    back = world.jobs.submission_lost(lost, "history proves nothing was created").job
    assert back is not None
    assert month(world) == (0, 0)
    # Its task turns up while the job waits in RECEIVED: it becomes the job's task instead of a new one
    taken = world.jobs.record_task(
        back.job_id, Task(id="late", status="processing"), expected=JobStatus.RECEIVED, counted=back
    ).job
    assert taken is not None
    assert (taken.status, taken.attempts, taken.reserved_usd) == (JobStatus.SUBMITTED, 1, Decimal("1.00"))
    world.jobs.start_training(taken.job_id)
    storing = world.jobs.start_storing(taken.job_id).job
    assert storing is not None
    world.jobs.complete(storing, {"weights_uri": "s3://w/k"})
    assert month(world) == (Decimal("1.00"), Decimal("1.00"))


def test_a_limit_met_by_a_job_with_earlier_tasks_fails_it_retryably_instead_of_rejecting_it(world: World) -> None:
    # Given a job whose first task failed retryably and went back to RECEIVED for another
    first = world.submitter.accept_upload(upload(world))
    world.jobs.start_training(first.job_id)
    world.jobs.send_back(first.job_id, "task failed [5003]: another attempt")
    # When its next quote is over MaxJobUsd
    world.wavespeed.price = Decimal(3)
    job = world.submitter.resubmit(first.job_id)
    assert job is not None
    assert (job.status, job.error_code, job.attempts) == (JobStatus.FAILED, ErrorCode.OVER_BUDGET, 1)
    assert job.error is not None
    assert job.error.endswith(
        f"then `loradrop retry {job.job_id}`. No new task was started (1 earlier task(s) were paid for)"
    )
    assert len(world.wavespeed.posts) == 1


def test_a_quote_over_the_whole_month_says_so(world: World) -> None:
    world.wavespeed.price = Decimal("2.00")
    world.submitter._settings = world.submitter._settings.model_copy(update={"monthly_budget_usd": Decimal("1.50")})
    job = world.submitter.accept_upload(upload(world))
    assert (job.status, job.error_code) == (JobStatus.REJECTED, ErrorCode.BUDGET_EXHAUSTED)
    assert job.error == (
        "this job's quote of 2.00 USD is more than the whole MonthlyBudgetUsd (1.50 USD): raise MonthlyBudgetUsd, or "
        "train with fewer steps, then upload again. Nothing was paid"
    )


def test_the_price_is_not_asked_without_time_for_the_post_after_it(world: World) -> None:
    ref = upload(world)
    short = Deadline.within(world.submitter._post_seconds() + 1)
    with pytest.raises(RetryLater):
        world.submitter.accept_upload(ref, short)
    assert (world.wavespeed.quotes, world.wavespeed.posts) == ([], [])
    job = world.jobs.get(ref.job_id)
    assert job is not None
    assert (job.status, job.error_code) == (JobStatus.RECEIVED, None)
