"""What `loradrop status` shows of a job being settled, and of one with paid tasks of earlier attempts."""

from __future__ import annotations

import io

from rich.console import Console

from loradrop.job import Job, SettleProgress
from loradrop.models import JobStatus
from loradrop_cli.view import describe

AT = "2026-11-25T09:00:00.000Z"


def shown(job: Job) -> str:
    out = io.StringIO()
    describe(job, Console(file=out, width=200, color_system=None))
    return out.getvalue()


def test_an_uncertain_submission_shows_how_far_settling_got() -> None:
    job = Job(
        job_id="ana-1",
        status=JobStatus.SUBMITTING,
        source_bucket="b",
        source_key="uploads/ana.zip",
        submit_url_sha256="l",
        settling=SettleProgress(link="l", checked=1240, requests=1263, absent_since="2026-11-25T09:31:00.000Z"),
        created_at=AT,
        updated_at=AT,
    )
    assert "1240 tasks in WaveSpeed's history checked, 1263 requests; none was this upload's at" in shown(job)


def test_tasks_of_earlier_attempts_are_named_as_paid_for() -> None:
    job = Job(
        job_id="ana-1",
        status=JobStatus.COMPLETED,
        source_bucket="b",
        source_key="uploads/ana.zip",
        prediction_id="second",
        attempts=2,
        stray_tasks=["first"],
        created_at=AT,
        updated_at=AT,
    )
    text = shown(job)
    assert "first: earlier attempts' tasks, paid for" in text
    assert "second (attempts: 2)" in text
