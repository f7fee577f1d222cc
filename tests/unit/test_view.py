"""What `loradrop status` shows of a job being settled, of one with paid tasks of earlier attempts, and of a job's
sample images while they render and once they are stored; the gallery `fetch --samples` and the demo print."""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from loradrop.job import Job, SettleProgress
from loradrop.models import JobStatus
from loradrop_cli.sample_view import counts, gallery, where_to_open
from loradrop_cli.view import describe

AT = "2026-11-25T09:00:00.000Z"


def shown(job: Job, samples: Sequence[dict[str, Any]] = ()) -> str:
    out = io.StringIO()
    describe(job, Console(file=out, width=300, color_system=None), samples)
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


# ----- sample images -----
def job_with_samples(status: JobStatus = JobStatus.COMPLETED, **fields: Any) -> Job:
    return Job(
        job_id="ana-1",
        status=status,
        source_bucket="b",
        source_key="uploads/ana.zip",
        params={"trigger_word": "zxq", "sample_prompts": ["{trigger} in a garden", "on a beach", "a zxq portrait"]},
        created_at=AT,
        updated_at=AT,
        **fields,
    )


def rows(text: str, title: str) -> list[list[str]]:
    """The rows of the table under `title` (its header first, up to the next title), each cut at runs of two
    spaces or more."""
    lines = [line.rstrip() for line in text.splitlines()]
    table = lines[lines.index(title) + 1 : lines.index("history")]
    return [re.split(r"\s{2,}", line.strip()) for line in table]


def test_while_samples_render_each_prompt_shows_where_it_stands() -> None:
    # Given a completed job whose three samples are at different steps (one row not written yet)
    samples = [
        {"index": 0, "prompt": "zxq in a garden", "seed": 11, "state": "rendering", "prediction_id": "t-1"},
        {
            "index": 1,
            "prompt": "zxq, on a beach",
            "seed": 22,
            "state": "submitting",
            "error_code": "SUBMIT_UNCERTAIN",
            "error": "timed out",
            "quote_usd": 0.025,
        },
        {"index": 2, "prompt": "a zxq portrait", "seed": 33, "state": "waiting"},
    ]
    # When `loradrop status` shows it
    text = shown(job_with_samples(), samples)
    # Then a line sums them up, and each prompt has its row: number from 1, state, seed, prompt, what it waits for
    assert "samples  3 prompt(s): 1 waiting, 1 submitting, 1 rendering · 0.025 USD quoted for 1" in text
    assert rows(text, "samples") == [
        ["#", "state", "seed", "prompt", "image or why not"],
        ["1", "rendering", "11", "zxq in a garden", "task t-1: rendering on WaveSpeed"],
        [
            "2",
            "submitting",
            "22",
            "zxq, on a beach",
            "the POST got no usable answer: settling it from WaveSpeed's records (never sent again on a guess)",
        ],
        ["3", "waiting", "33", "a zxq portrait", "waiting for the LoRA"],
    ]
    # And the prompts are not repeated among the training parameters
    assert "sample_prompts" not in text


def test_once_settled_each_sample_shows_its_image_or_why_not() -> None:
    done = {
        "index": 0,
        "prompt": "zxq in a garden",
        "seed": 11,
        "state": "done",
        "image_uri": "s3://w/loras/ana-1/samples/1.png",
        "image_sha256": "ab" * 32,
    }
    failed = {
        "index": 1,
        "prompt": "zxq, on a beach",
        "seed": 22,
        "state": "failed",
        "error_code": "5000",
        "error": "the renderer fell over",
    }
    job = job_with_samples(samples=[done, failed], samples_settled_at="2026-11-25T09:05:00.000Z")
    text = shown(job, job.samples or [])
    assert "samples  1 of 2 rendered (settled 2026-11-25T09:05:00.000Z)" in text
    assert rows(text, "samples")[1:] == [
        ["1", "done", "11", "zxq in a garden", "s3://w/loras/ana-1/samples/1.png"],
        ["2", "failed", "22", "zxq, on a beach", "[5000] the renderer fell over"],
    ]


def test_a_job_that_never_trained_says_its_samples_were_not_rendered() -> None:
    waiting = [{"index": i, "prompt": "p", "seed": i, "state": "waiting"} for i in range(3)]
    text = shown(job_with_samples(JobStatus.FAILED, error_code="5000", error="boom"), waiting)
    assert "samples  3 asked for: none rendered, the job did not complete" in text
    assert "image or why not" not in text


def test_the_gallery_names_each_local_file_or_why_there_is_none() -> None:
    saved = [
        ({"index": 0, "prompt": "zxq in a garden", "state": "done"}, Path("/tmp/ana/samples/1.png")),
        (
            {"index": 1, "prompt": "zxq, on a beach", "state": "failed", "error_code": "OUTPUT_GONE", "error": "gone"},
            None,
        ),
    ]
    out = io.StringIO()
    Console(file=out, width=200, color_system=None).print(gallery(saved))
    assert [re.split(r"\s{2,}", line.strip()) for line in out.getvalue().splitlines()] == [
        ["#", "prompt", "file (sha256 verified)"],
        ["1", "zxq in a garden", "/tmp/ana/samples/1.png"],
        ["2", "zxq, on a beach", "not rendered: [OUTPUT_GONE] gone"],
    ]


def test_counts_follow_a_samples_way_and_keep_states_this_version_does_not_know() -> None:
    states = ["done", "rendering", "SAMPLE_NEW", "done", "planned"]
    assert counts([{"state": state} for state in states]) == "1 planned, 1 rendering, 2 done, 1 SAMPLE_NEW"


def test_a_terminal_gets_links_to_each_image_and_to_the_gallery(tmp_path: Path) -> None:
    saved = [({"index": 0}, tmp_path / "samples" / "1.png"), ({"index": 1, "state": "failed"}, None)]
    assert where_to_open(saved, tmp_path / "ana.README.md") == [
        f"file://{tmp_path}/samples/1.png",
        f"file://{tmp_path}/ana.README.md  (the model card with the gallery: any Markdown viewer)",
    ]
