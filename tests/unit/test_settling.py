"""How the reconciler settles an uncertain submission, rule by rule, at the production defaults (30 s of clock
skew, 30 min grace, absence confirmed 5 min later, a one-day deadline): moto in process for DynamoDB and SQS, a
fake WaveSpeed history that can be as crowded and as odd as a busy account's, and the clock passed in, so every
rule runs in milliseconds."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aws_lambda_powertools import Logger

from loradrop.deadline import Deadline
from loradrop.job import Job, iso, parse_iso, url_digest
from loradrop.jobs import JobStore
from loradrop.models import JobStatus, Task
from loradrop.redaction import json_for_logs
from loradrop.wavespeed import HistoryPage
from loradrop_local.dataset import training_zip
from tests.unit.conftest import World

Logger(json_serializer=json_for_logs)  # the parent of the domain's child loggers, as each handler creates it
POSTED_AT = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
OUR_LINK = "https://uploads.s3.amazonaws.com/uploads/ana.zip?X-Amz-Signature=ours"
EARLIER_LINK = "https://uploads.s3.amazonaws.com/uploads/ana.zip?X-Amz-Signature=earlier"
MODEL = "wavespeed-ai/flux-dev-lora-trainer"
CREATED = POSTED_AT + timedelta(seconds=1)  # when a task the tests add was created, unless they say


@pytest.fixture
def environment() -> dict[str, str]:
    # Every run looks at every job here; in AWS a job is first looked at after 15 min.
    return {"RECONCILE_AFTER_SECONDS": "0"}


@pytest.fixture
def world(world: World) -> World:
    world.clock.now = POSTED_AT  # the table's writes are stamped with the test's time, as the reconciler's
    return world


def created(task: Task) -> datetime:
    """When WaveSpeed created a task of the fake's (all in this file have a creation time)."""
    return parse_iso(task.created_at or "")


def uncertain_job(
    jobs: JobStore, job_id: str = "ana-000000000001", *, lost: int = 0, link: str = OUR_LINK, earlier: str = ""
) -> Job:
    """A job whose POST at POSTED_AT got no usable answer (after an earlier attempt that sent `earlier`)."""
    at = iso(POSTED_AT)
    history: list[dict[str, Any]] = [{"status": "RECEIVED", "at": at}]
    if earlier:
        history += [{"status": "SUBMITTING", "at": at, "link": url_digest(earlier)}, {"status": "RECEIVED", "at": at}]
    history.append({"status": "SUBMITTING", "at": at, "link": url_digest(link)})
    job = Job(
        job_id=job_id,
        status=JobStatus.SUBMITTING,
        source_bucket="uploads",
        source_key="uploads/ana.zip",
        params={"model": MODEL},
        attempts=1,
        lost_submissions=lost,
        error_code="SUBMIT_UNCERTAIN",
        submit_started_at=at,
        submit_url_sha256=url_digest(link),
        created_at=at,
        updated_at=at,
        history=history,
    )
    jobs.claim(job)
    return job


def run(world: World, after: timedelta, **options: Any) -> dict[str, int]:
    return run_at(world, POSTED_AT + after, **options)


def run_at(world: World, now: datetime, **options: Any) -> dict[str, int]:
    world.clock.now = now
    summary: dict[str, int] = world.reconciler.run(now=now, **options)
    return summary


def resubmissions(world: World) -> list[dict[str, Any]]:
    answer = world.sqs.receive_message(QueueUrl=world.queues.intake, MaxNumberOfMessages=10)
    return [json.loads(m["Body"]) for m in answer.get("Messages", [])]


# ----- when and where to look -----
def test_a_post_that_may_still_be_waiting_is_left_alone(world: World) -> None:
    uncertain_job(world.jobs)
    assert run(world, timedelta(seconds=30)) == {"submitting": 1}
    assert world.wavespeed.listings == []


def test_the_window_runs_from_the_posts_start_to_its_last_possible_answer_with_30_s_of_skew(
    world: World,
) -> None:
    uncertain_job(world.jobs)
    run(world, timedelta(minutes=5))
    near, whole = world.wavespeed.listings
    assert near.model == whole.model == MODEL
    # first the ten seconds either side of the POST's start, where its task is all but sure to be
    assert (near.created_after, near.created_before) == ("2026-11-25T08:59:50.000Z", "2026-11-25T09:00:10.000Z")
    # then the whole window: + 10 s connect + 60 s read + 5 s, and 30 s either side for the clocks
    assert (whole.created_after, whole.created_before) == ("2026-11-25T08:59:30.000Z", "2026-11-25T09:01:45.000Z")


# ----- proof of absence -----
def test_nothing_created_is_concluded_from_two_complete_reads_minutes_apart_both_past_the_grace(
    world: World,
) -> None:
    job = uncertain_job(world.jobs)
    world.wavespeed.crowd(40, around=POSTED_AT)  # other uploads' tasks, all checked
    assert run(world, timedelta(minutes=29)) == {"waiting for history": 1}
    assert run(world, timedelta(minutes=31)) == {"absent once, confirming": 1}
    assert run(world, timedelta(minutes=35)) == {"absent once, confirming": 1}  # 4 minutes later: not yet
    assert resubmissions(world) == []
    assert run(world, timedelta(minutes=36, seconds=1)) == {"resubmitted (nothing was created)": 1}
    moved = world.jobs.get(job.job_id)
    assert moved.status is JobStatus.RECEIVED
    assert moved.attempts == 0  # nothing was created: no task may exist
    assert moved.lost_submissions == 1
    assert moved.settling is None
    assert "complete history, read at 2026-11-25T09:31:00.000Z and again later" in moved.history[-1].note
    assert resubmissions(world) == [{"job_id": job.job_id, "action": "resubmit"}]
    # every other task was asked about once, however many runs looked at the window
    assert sorted(world.wavespeed.gets) == sorted(f"other-{i:05d}" for i in range(40))


def test_a_second_read_that_finds_other_tasks_starts_the_confirmation_over(world: World) -> None:
    uncertain_job(world.jobs)
    assert run(world, timedelta(minutes=31)) == {"absent once, confirming": 1}
    world.wavespeed.add("late-arrival", link="https://elsewhere.test/late.zip", at=CREATED)  # the history lagged
    assert run(world, timedelta(minutes=37)) == {"absent once, confirming": 1}
    assert run(world, timedelta(minutes=43)) == {"resubmitted (nothing was created)": 1}


def test_the_third_lost_submission_ends_the_job_with_nothing_billed(world: World) -> None:
    job = uncertain_job(world.jobs, lost=2)
    run(world, timedelta(hours=1))
    assert run(world, timedelta(hours=1, minutes=6)) == {"failed": 1}
    ended = world.jobs.get(job.job_id)
    assert (ended.status, ended.error_code, ended.attempts) == (JobStatus.FAILED, "SUBMIT_FAILED", 0)
    assert f"loradrop retry {job.job_id}" in ended.error


@pytest.mark.parametrize(
    ("oddity", "why"),
    [
        ("no total, never a shorter page", "its history pages repeat tasks"),
        ("a total that disagrees", "disagree with the"),
        ("entries without an id", "history entries without a task id"),
    ],
)
def test_a_history_that_does_not_show_it_is_complete_is_never_proof_of_absence(
    world: World, oddity: str, why: str
) -> None:
    job = uncertain_job(world.jobs)
    world.wavespeed.crowd(30, around=POSTED_AT)
    ws = world.wavespeed
    original = ws.list_predictions
    if oddity == "no total, never a shorter page":  # a proxy that serves page 1 whatever page is asked for
        ws.with_total = False
        ws.list_predictions = lambda **q: original(**(q | {"page": 1}))
    elif oddity == "a total that disagrees":
        ws.list_predictions = lambda **q: HistoryPage(original(**q).items, original(**q).size, 500)
    else:
        ws.list_predictions = lambda **q: HistoryPage(original(**q).items[1:], original(**q).size, original(**q).total)
    for minutes in (31, 40, 60, 600):
        assert run(world, timedelta(minutes=minutes)) == {"ambiguous": 1}
    assert resubmissions(world) == []
    assert run(world, timedelta(hours=24, minutes=1)) == {"failed": 1}
    ended = world.jobs.get(job.job_id)
    assert (ended.error_code, ended.attempts) == ("SUBMIT_UNSETTLED", 1)
    assert why in ended.error


@pytest.mark.parametrize("cap", [100, 50, 37])
def test_without_a_total_a_shorter_page_ends_the_listing_whatever_page_size_the_server_serves(
    world: World, cap: int
) -> None:
    uncertain_job(world.jobs)
    world.wavespeed.with_total, world.wavespeed.page_cap = False, cap
    world.wavespeed.crowd(250, around=POSTED_AT)
    assert run(world, timedelta(minutes=31)) == {"absent once, confirming": 1}
    pages = [call.page for call in whole_window(world)]
    in_the_window = sum(1 for t in world.wavespeed.tasks if in_window(world, t))
    assert pages == list(range(1, in_the_window // cap + 2))  # up to and including the shorter page
    assert run(world, timedelta(minutes=37))["resubmitted (nothing was created)"] == 1


def test_an_unreadable_history_is_ambiguous_never_proof(world: World) -> None:
    job = uncertain_job(world.jobs)
    world.wavespeed.history_broken = True
    assert run(world, timedelta(hours=5)) == {"ambiguous": 1}
    assert resubmissions(world) == []
    assert run(world, timedelta(days=2)) == {"failed": 1}
    assert world.jobs.get(job.job_id).error_code == "SUBMIT_UNSETTLED"


def test_a_task_that_names_no_upload_waits_then_fails_with_what_to_check(world: World) -> None:
    job = uncertain_job(world.jobs)
    world.wavespeed.add("whose", link=None, at=CREATED)
    assert run(world, timedelta(hours=2)) == {"ambiguous": 1}
    assert world.jobs.get(job.job_id).status is JobStatus.SUBMITTING
    assert run(world, timedelta(hours=24, minutes=1)) == {"failed": 1}
    ended = world.jobs.get(job.job_id)
    assert (ended.status, ended.error_code, ended.attempts) == (JobStatus.FAILED, "SUBMIT_UNSETTLED", 1)
    assert "whose" in ended.error
    assert "2026-11-25T08:59:30.000Z" in ended.error
    assert "s3://uploads/uploads/ana.zip" in ended.error


# ----- finding the task -----
@pytest.mark.parametrize("named_by", ["result", "history"])
def test_a_task_whose_input_is_our_link_is_adopted(world: World, named_by: str) -> None:
    job = uncertain_job(world.jobs)
    world.wavespeed.add("someone-elses", link="https://other/zip", at=CREATED)
    world.wavespeed.add("ours", link=OUR_LINK, history_input=named_by == "history", at=CREATED)
    assert run(world, timedelta(minutes=5)) == {"adopted, training": 1}
    adopted = world.jobs.get(job.job_id)
    assert (adopted.status, adopted.prediction_id, adopted.attempts) == (JobStatus.TRAINING, "ours", 1)
    assert adopted.error_code is None
    assert adopted.settling is None
    note = next(e.note for e in adopted.history if (e.note or "").startswith("task adopted"))
    assert note.startswith("task adopted: found in WaveSpeed's prediction history (")


def test_in_a_crowded_window_the_task_nearest_the_posts_start_is_checked_first(world: World) -> None:
    # Given 3,000 other tasks in the window (a Silver account at full rate, plus the web UI)
    job = uncertain_job(world.jobs)
    world.wavespeed.crowd(3000, around=POSTED_AT)
    world.wavespeed.add("ours", link=OUR_LINK, at=POSTED_AT + timedelta(milliseconds=700))
    # When the reconciler settles it
    assert run(world, timedelta(minutes=5)) == {"adopted, training": 1}
    # Then it read the window's pages and confirmed only the tasks created nearer the POST's start than ours
    assert world.jobs.get(job.job_id).prediction_id == "ours"
    near = sum(1 for t in world.wavespeed.tasks.values() if abs((created(t) - POSTED_AT).total_seconds()) <= 10)
    assert len(world.wavespeed.listings) == -(-near // 100)  # only the pages of the ten seconds around the POST
    assert whole_window(world) == []
    nearer = sum(1 for t in world.wavespeed.tasks.values() if abs((created(t) - POSTED_AT).total_seconds()) < 0.7)
    assert len(world.wavespeed.gets) == nearer + 1 < 60


def test_tasks_owned_by_other_jobs_are_not_asked_about(world: World) -> None:
    world.jobs.claim(
        Job(
            job_id="bob-000000000002",
            status=JobStatus.COMPLETED,
            source_bucket="uploads",
            source_key="uploads/bob.zip",
            prediction_id="bobs",
            created_at=iso(POSTED_AT),
            updated_at=iso(POSTED_AT),
        )
    )
    world.wavespeed.add("bobs", link=None, at=CREATED)  # would be ambiguous if it were not owned
    job = uncertain_job(world.jobs)
    run(world, timedelta(minutes=31))
    assert run(world, timedelta(minutes=37))["resubmitted (nothing was created)"] == 1
    assert world.jobs.get(job.job_id).status is JobStatus.RECEIVED
    assert "bobs" not in world.wavespeed.gets


def test_a_busy_window_is_checked_over_several_runs_from_where_the_last_stopped(world: World) -> None:
    # Given a window of 400 other tasks, where every WaveSpeed request takes a second of a job's 60 s share
    job = uncertain_job(world.jobs)
    world.wavespeed.crowd(400, around=POSTED_AT)
    world.clock.elapsed = 1000.0  # stopped: it moves a second a request
    # When the reconciler runs every minute from the end of the grace
    outcomes = []
    for minute in range(31, 60):
        outcomes.append(next(iter(run(world, timedelta(minutes=minute)))))
        if outcomes[-1].startswith("resubmitted"):
            break
    # Then each run goes on from the cursor, every task is asked about exactly once, and only then is the
    # window's absence read twice and concluded
    checking = outcomes.index("absent once, confirming")
    assert checking >= 2
    assert set(outcomes[:checking]) == {"checking"}
    assert outcomes[-1] == "resubmitted (nothing was created)"
    assert sorted(world.wavespeed.gets) == sorted(t for t in world.wavespeed.tasks if in_window(world, t))
    assert world.jobs.get(job.job_id).lost_submissions == 1


def whole_window(world: World) -> list[dict[str, Any]]:
    """The history requests for the POST's whole window (not the near one read first)."""
    return [call for call in world.wavespeed.listings if call.created_after == "2026-11-25T08:59:30.000Z"]


def in_window(world: World, task_id: str) -> bool:
    at = created(world.wavespeed.tasks[task_id])
    return POSTED_AT - timedelta(seconds=30) <= at <= POSTED_AT + timedelta(seconds=105)


def test_a_task_that_turns_up_behind_the_cursor_is_not_skipped(world: World) -> None:
    job = uncertain_job(world.jobs)
    world.wavespeed.crowd(20, around=POSTED_AT, spread=20)
    world.clock.elapsed = 1000.0  # stopped: it moves a second a request
    # a first run with time for part of the window only (12 s of requests)
    run(world, timedelta(minutes=5), remaining_ms=lambda: 22_000)
    assert 0 < world.jobs.get(job.job_id).settling.checked < 20
    # our task shows up late, nearer the POST than everything checked so far
    world.wavespeed.add("ours", link=OUR_LINK, at=POSTED_AT + timedelta(milliseconds=1))
    assert run(world, timedelta(minutes=6)) == {"adopted, training": 1}


def test_adoption_holds_only_for_the_attempt_the_task_names(world: World) -> None:
    # Given an uncertain job, looked at while its first attempt was current
    job = uncertain_job(world.jobs)
    world.wavespeed.add("ours", link=OUR_LINK, at=CREATED)
    # When, meanwhile, that attempt was settled as lost and a second attempt is in flight
    world.jobs.submission_deferred(job, "not submitted, will retry")
    world.jobs.begin_submission(job.job_id, found={}, params={}, warnings=[], link="second", at=job.created_at)
    _, said = world.tracker.adopt(job, world.wavespeed.get_result("ours"), "a stale look")
    # Then the task is not taken as the second attempt's, nor forgotten: it is the first attempt's, paid for
    current = world.jobs.get(job.job_id)
    assert said == "stray task recorded"
    assert (current.status, current.prediction_id, current.stray_tasks) == (JobStatus.SUBMITTING, None, ["ours"])
    assert current.attempts == 2


def test_a_task_whose_attempt_was_settled_as_lost_while_its_webhook_was_confirmed_is_taken(
    world: World,
) -> None:
    # Given an uncertain job whose task's webhook is being confirmed with WaveSpeed's GET...
    job = uncertain_job(world.jobs)
    world.wavespeed.add("ours", link=OUR_LINK, status="completed", at=CREATED)
    # ...while the reconciler settles the attempt as lost (a queued task the history did not list)
    world.jobs.submission_deferred(job, "not submitted, will retry")
    # When the webhook's adoption lands
    _, said = world.tracker.adopt(job, world.wavespeed.get_result("ours"), "its signed webhook")
    # Then the job, waiting to submit again, takes the task instead of paying for a new one
    current = world.jobs.get(job.job_id)
    assert said == "earlier task taken, storing"
    assert (current.status, current.prediction_id, current.attempts) == (JobStatus.STORING, "ours", 1)


def test_a_task_of_an_earlier_attempt_found_in_the_window_is_recorded_and_counted(world: World) -> None:
    job = uncertain_job(world.jobs, earlier=EARLIER_LINK)
    world.wavespeed.add("earlier-task", link=EARLIER_LINK, status="completed", at=CREATED)
    assert run(world, timedelta(minutes=31)) == {"absent once, confirming": 1}
    stored = world.jobs.get(job.job_id)
    assert stored.stray_tasks == ["earlier-task"]
    assert stored.attempts == 2  # the stray is paid for: it counts
    assert "earlier-task" in stored.task_ids()
    assert any("of an earlier attempt turned up" in (e.note or "") for e in stored.history)
    run(world, timedelta(minutes=37))
    assert world.jobs.get(job.job_id).stray_tasks == ["earlier-task"]  # recorded once


def test_a_task_that_cannot_be_checked_now_stops_the_run_for_this_job_without_losing_progress(
    world: World,
) -> None:
    job = uncertain_job(world.jobs)
    world.wavespeed.crowd(10, around=POSTED_AT)
    nearest = sorted(world.wavespeed.tasks.values(), key=lambda t: abs((created(t) - POSTED_AT).total_seconds()))
    world.wavespeed.proxy_404.add(nearest[3].id)  # a proxy's 404 page: not WaveSpeed's word
    assert run(world, timedelta(minutes=31)) == {"checking": 1}
    assert world.jobs.get(job.job_id).settling.checked == 3
    world.wavespeed.proxy_404.clear()
    assert run(world, timedelta(minutes=32)) == {"absent once, confirming": 1}


def test_one_broken_job_does_not_stop_the_run_and_time_running_out_does(world: World) -> None:
    uncertain_job(world.jobs, "aaa-000000000002", link=f"{OUR_LINK}-a")
    uncertain_job(world.jobs, "bbb-000000000003", link=f"{OUR_LINK}-b")
    world.wavespeed.add("x", link=None, at=CREATED)
    calls = {"n": 0}
    original = world.wavespeed.get_result

    def flaky(task_id: str, deadline: Deadline | None = None) -> Task:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("unexpected answer")
        return original(task_id)

    world.wavespeed.get_result = flaky
    assert run(world, timedelta(hours=2)) == {"error": 1, "ambiguous": 1}
    summary = run(world, timedelta(hours=2, minutes=1), remaining_ms=lambda: 5_000)
    assert summary == {"left for the next run": 1}


def test_a_persons_retry_of_a_lost_submission_starts_the_count_again(world: World) -> None:
    # Given a job that ended SUBMIT_FAILED after three lost POSTs, its ZIP still in S3
    world.s3.put_object(Bucket="uploads", Key="uploads/ana.zip", Body=training_zip())
    job = uncertain_job(world.jobs, lost=2)
    run(world, timedelta(hours=1))
    assert run(world, timedelta(hours=1, minutes=6)) == {"failed": 1}
    world.wavespeed.answer = Task(id="fresh-task", model=MODEL)
    # When a person retries it and WaveSpeed answers
    retried = world.submitter.retry(job.job_id)
    # Then it trains, and a later lost POST would again get its full count of chances
    assert retried is not None
    assert (retried.status, retried.prediction_id, retried.attempts) == (JobStatus.SUBMITTED, "fresh-task", 1)
    assert retried.lost_submissions == 0


def test_a_received_job_has_the_whole_deadline_from_when_it_entered_received(world: World) -> None:
    # Given a job uploaded three days ago, failed, and retried by a person 40 minutes ago (back in RECEIVED)
    now = POSTED_AT
    uploaded = now - timedelta(days=3)
    retried = now - timedelta(minutes=40)
    job = Job(
        job_id="old-000000000009",
        status=JobStatus.RECEIVED,
        source_bucket="uploads",
        source_key="uploads/old.zip",
        created_at=iso(uploaded),
        updated_at=iso(retried),
        history=[
            {"status": "RECEIVED", "at": iso(uploaded)},
            {"status": "SUBMITTING", "at": iso(uploaded)},
            {"status": "FAILED", "at": iso(uploaded + timedelta(hours=1))},
            {"status": "RECEIVED", "at": iso(retried), "note": "retried by request after [5003]"},
            {"status": "RECEIVED", "at": iso(retried + timedelta(minutes=1)), "note": "not submitted, will retry"},
        ],
    )
    world.jobs.claim(job)
    # When the reconciler finds it waiting
    assert run_at(world, now) == {"resubmission re-queued": 1}
    # Then it is queued again, not ended for its upload's age; a day after the retry it ends NOT_SUBMITTED
    assert world.jobs.get(job.job_id).status is JobStatus.RECEIVED
    assert run_at(world, retried + timedelta(days=1, minutes=1)) == {"failed": 1}
    assert world.jobs.get(job.job_id).error_code == "NOT_SUBMITTED"


def test_an_attempt_without_its_start_recorded_still_ends_by_the_deadline(world: World) -> None:
    # Given an uncertain job written by an older version: no submit_started_at (the reconciler's looks move
    # updated_at, so that cannot stand in for it)
    job = uncertain_job(world.jobs)
    world.db.update_item(
        TableName="jobs", Key={"job_id": {"S": job.job_id}}, UpdateExpression="REMOVE submit_started_at"
    )
    world.wavespeed.add("whose", link=None, at=CREATED)
    for minutes in range(15, 24 * 60, 15):
        assert run(world, timedelta(minutes=minutes)) == {"ambiguous": 1}
    # Then a day after it entered SUBMITTING, it ends with what to look for
    assert run(world, timedelta(days=1, minutes=1)) == {"failed": 1}
    assert world.jobs.get(job.job_id).error_code == "SUBMIT_UNSETTLED"


def test_a_history_whose_tasks_keep_changing_cannot_hold_a_job_past_the_deadline(world: World) -> None:
    job = uncertain_job(world.jobs)
    for hour in range(1, 24):
        # the window never stands still
        world.wavespeed.add(f"late-{hour}", link=f"https://elsewhere.test/{hour}.zip", at=CREATED)
        assert run(world, timedelta(hours=hour)) == {"absent once, confirming": 1}
    world.wavespeed.add("late-24", link="https://elsewhere.test/24.zip", at=CREATED)
    assert run(world, timedelta(days=1, minutes=1)) == {"failed": 1}
    assert world.jobs.get(job.job_id).error_code == "SUBMIT_UNSETTLED"
    assert resubmissions(world) == []


def test_a_link_that_names_the_jobs_own_object_is_never_another_uploads(world: World) -> None:
    # Given a task whose link is not one the job sent, yet names its S3 object (re-encoded on the way, say)
    job = uncertain_job(world.jobs)
    world.wavespeed.add(
        "re-encoded", link="https://uploads.s3.amazonaws.com/uploads/ana%2Ezip?X-Amz-Signature=x", at=CREATED
    )
    # Then it is not taken as another upload's: absence is never concluded past it
    for minutes in (31, 37, 60):
        assert run(world, timedelta(minutes=minutes)) == {"ambiguous": 1}
    assert world.jobs.get(job.job_id).status is JobStatus.SUBMITTING
    assert resubmissions(world) == []


def test_an_attempt_whose_link_was_not_recorded_is_never_concluded_absent(world: World) -> None:
    job = uncertain_job(world.jobs)
    world.db.update_item(
        TableName="jobs", Key={"job_id": {"S": job.job_id}}, UpdateExpression="REMOVE submit_url_sha256"
    )
    assert run(world, timedelta(minutes=31)) == {"ambiguous": 1}
    assert run(world, timedelta(minutes=40)) == {"ambiguous": 1}
    assert world.wavespeed.listings == []
    assert run(world, timedelta(days=1, minutes=1)) == {"failed": 1}


def _answered(world: World, change: Any) -> None:
    """WaveSpeed's history answers each task as `change` makes it (its filters still use the exact times)."""
    original = world.wavespeed.list_predictions

    def listing(**query: Any) -> HistoryPage:
        page = original(**query)
        return HistoryPage([change(task) for task in page.items], page.size, page.total)

    world.wavespeed.list_predictions = listing


@pytest.mark.parametrize(
    "answer",
    ["whole seconds", "one task without a time"],
)
def test_a_busy_window_settles_whatever_form_its_times_are_answered_in(world: World, answer: str) -> None:
    # Given 1,000 other tasks around the POST, and every WaveSpeed request taking a second of a run's share
    job = uncertain_job(world.jobs)
    world.wavespeed.crowd(1000, around=POSTED_AT)
    if answer == "whole seconds":
        _answered(world, lambda t: t.model_copy(update={"created_at": (t.created_at or "")[:19] + "Z"}))
    else:
        world.wavespeed.add("no-time", link="https://elsewhere.test/n.zip", at=POSTED_AT + timedelta(seconds=2))
        _answered(world, lambda t: t.model_copy(update={"created_at": None}) if t.id == "no-time" else t)
    world.clock.elapsed = 1000.0  # stopped: it moves a second a request
    # When the reconciler runs every minute
    outcomes = []
    for minute in range(31, 91):
        outcomes.append(next(iter(run(world, timedelta(minutes=minute)))))
        if outcomes[-1].startswith("resubmitted"):
            break
    # Then the checks go forward run after run (the near pass never pulls the cursor back) and absence is proven
    assert outcomes[-1] == "resubmitted (nothing was created)"
    assert len(world.wavespeed.gets) == len(set(world.wavespeed.gets))  # each task asked about once
    assert world.jobs.get(job.job_id).status is JobStatus.RECEIVED
