"""A job's sample images on a stack (`loradrop.samples`), for `status`, `fetch --samples` and the demo: where each
stands, following them until every one ended, and downloading the stored ones, checked.

The job carries its `samples` only once every one ended (`samples_settled_at`); until then each sample is a row of
its own beside the job, read with the job store's own `samples_of`.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import TextIO

from rich.console import Console
from rich.text import Text

from loradrop.job import Job
from loradrop.models import JobStatus
from loradrop.samples import render_prompt, seed_for
from loradrop_cli.job_client import CliError, StillRunning, Target, download_verified
from loradrop_cli.sample_view import Sample, counts, unsettled
from loradrop_cli.view import console_for, samples_line, watch

SAMPLES_FOLDER = "samples"  # beside the weights, as in S3: the README's gallery links `samples/1.png`


def asked_for(job: Job) -> int:
    return len(job.params.sample_prompts or []) if job.params else 0


def sample_states(target: Target, job: Job) -> list[Sample]:
    """Each sample of the job: the job's record once every one ended, else its row (one not written yet, while the
    weights are being stored, is `waiting`, with the prompt and seed it will be sent with)."""
    if job.samples is not None:
        return job.samples
    if not asked_for(job) or job.params is None:
        return []
    trigger = job.params.trigger_word or ""
    prompts = job.params.sample_prompts or []
    states: list[Sample] = []
    for index, (row, prompt) in enumerate(zip(target.jobs.samples_of(job), prompts, strict=True)):
        if row is not None:
            states.append(row.public())
        else:
            text = render_prompt(prompt, trigger)
            states.append({"index": index, "prompt": text, "seed": seed_for(job.job_id, index), "state": "waiting"})
    return states


def follow_samples(target: Target, job_id: str, timeout: float, out: TextIO) -> Job:
    """Follow a completed job's samples until every one ended (a live line on a terminal); the job, with its
    `samples`. StillRunning after `timeout` seconds."""

    def poll() -> tuple[Job, list[Sample]]:
        job = target.jobs.get(job_id)
        if job is None:
            raise CliError(f"job {job_id} is gone from {target.description}")
        return job, sample_states(target, job)

    def shown(found: tuple[Job, list[Sample]], elapsed: float) -> tuple[str, Text]:
        return counts(found[1]), samples_line(found[1], elapsed)

    def settled(found: tuple[Job, list[Sample]]) -> bool:
        return found[0].samples_settled_at is not None or found[0].status is not JobStatus.COMPLETED

    def gave_up() -> Exception:
        return StillRunning(f"gave up waiting after {timeout:.0f}s; the samples go on: `loradrop status {job_id}`")

    job, _ = watch(poll, shown, settled, timeout=timeout, console=console_for(out), on_timeout=gave_up)
    return job


def samples_ready(target: Target, job: Job, *, wait: bool, timeout: float, out: TextIO) -> Job:
    """The job once its samples all ended, for downloading them: refused when it asked for none, StillRunning while
    they render (unless `wait`). A job that did not complete is left for the weights' own refusal."""
    if not asked_for(job):
        raise CliError(
            f"job {job.job_id} asked for no sample images: ask for them when uploading "
            "(`loradrop submit --sample-prompt TEXT`, or the stack's SamplePrompts)"
        )
    if job.status is not JobStatus.COMPLETED or job.samples_settled_at:
        return job
    if wait:
        return follow_samples(target, job.job_id, timeout, out)
    pending = unsettled(sample_states(target, job))
    raise StillRunning(
        f"{len(pending)} of {asked_for(job)} samples still rendering: try again in a minute, or add --wait "
        "(nothing was downloaded)"
    )


def download_samples(target: Target, job: Job, beside: Path, console: Console) -> list[tuple[Sample, Path | None]]:
    """Each stored sample image into `samples/` beside the weights (the file `beside`; its name as in S3, where the
    README's gallery links it), kept only if its SHA-256 is the job's record of it; None for one not rendered."""
    folder = beside.parent / SAMPLES_FOLDER
    saved: list[tuple[Sample, Path | None]] = []
    for sample in job.samples or []:
        uri = sample.get("image_uri")
        if not uri:
            saved.append((sample, None))
            continue
        destination = folder / PurePosixPath(str(uri)).name
        sha256, size = sample.get("image_sha256"), sample.get("image_size")
        download_verified(target, str(uri), destination, sha256=sha256, size=size, console=console)
        saved.append((sample, destination))
    return saved
