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


def test_the_surveys_caption_findings_and_costs_are_shown_with_its_warnings() -> None:
    warning = "no caption mentions the trigger word 'zxq': with captions WaveSpeed ignores trigger_word"
    job = Job(
        job_id="ana-1",
        status=JobStatus.COMPLETED,
        source_bucket="b",
        source_key="uploads/ana.zip",
        source_size=900_000,
        dataset={
            "images": 5,
            "distinct": 5,
            "usable": 5,
            "captions": 5,
            "captions_with_text": 5,
            "captions_mentioning_trigger": 0,
            "formats": {"JPEG": 5},
        },
        archive={
            "bytes_read": 70_000,
            "range_reads": 3,
            "survey_bytes_per_image_max": 4200,
            "captions_read": 5,
            "caption_bytes_read": 410,
            "junk": 12,
        },
        warnings=[warning],
        created_at=AT,
        updated_at=AT,
    )
    text = shown(job)
    assert "5 of 5 captioned (0 of 5 name the trigger word)" in text
    assert "70,000 of 900,000 bytes in 3 range GET(s), at most 4,200 per image; 410 for 5 caption(s)" in text
    assert f"warning  {warning}" in text
