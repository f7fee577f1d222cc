"""How the `loradrop` commands show things: job details and history, the jobs table, progress bars for
transfers and a live status line while following a job. Rendered with rich: colours and live lines on a
terminal, plain text without them when the output is a file or a pipe (scripts use `--json`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TextIO

from rich.console import Console
from rich.live import Live
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text

from loradrop.job import Job, parse_iso
from loradrop.models import TERMINAL_STATUSES, JobStatus
from loradrop_cli.sample_view import Sample, counts, samples_summary, samples_table

STATUS_STYLE = {
    "COMPLETED": "bold green",
    "FAILED": "bold red",
    "REJECTED": "bold red",
    "STORING": "cyan",
    "TRAINING": "yellow",
    "SUBMITTED": "yellow",
}
STATUS_WORDS = {
    "RECEIVED": "received, waiting to be submitted",
    "SUBMITTING": "submitting to WaveSpeed",
    "SUBMITTED": "queued on WaveSpeed",
    "TRAINING": "training on WaveSpeed",
    "STORING": "copying the weights into S3",
    "COMPLETED": "completed",
    "FAILED": "failed",
    "REJECTED": "rejected",
}


def console_for(out: TextIO) -> Console:
    """A console on `out`: a terminal gets colour and live lines; a file or pipe plain, unwrapped text."""
    if out.isatty():
        return Console(file=out, force_terminal=True, highlight=False)
    return Console(file=_TrimmedLines(out), width=1000, highlight=False)  # type: ignore[arg-type]


class _TrimmedLines:
    """Writes whole lines without the trailing spaces rich pads table rows with (plain output is grepped)."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._pending = ""

    def write(self, text: str) -> int:
        *lines, self._pending = (self._pending + text).split("\n")
        for line in lines:
            self._out.write(line.rstrip() + "\n")
        return len(text)

    def flush(self) -> None:
        self._out.flush()

    def isatty(self) -> bool:
        return False


# ----- durations -----
def clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60:02d}:{rest % 60:02d}"


def span(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h" if seconds < 86400 else f"{seconds / 86400:.1f} d"


def _moment(job: Job, status: JobStatus) -> datetime | None:
    entered = job.entered(status)
    return parse_iso(entered) if entered else None


def phases(job: Job, now: datetime | None = None) -> dict[str, float]:
    """Seconds spent so far waiting to be submitted, on WaveSpeed, and copying (the latest attempt's)."""
    now = now or datetime.now(UTC)
    ended = parse_iso(job.updated_at) if job.status in TERMINAL_STATUSES else now
    received = parse_iso(job.created_at)
    submitted, storing = _moment(job, JobStatus.SUBMITTED), _moment(job, JobStatus.STORING)
    found: dict[str, float] = {"queue": ((submitted or ended) - received).total_seconds()}
    if submitted:
        found["training"] = ((storing or ended) - submitted).total_seconds()
    if storing:
        found["storing"] = (ended - storing).total_seconds()
    return found


def duration(job: Job, now: datetime | None = None) -> float:
    """From the upload to its end (or to now, while it runs)."""
    end = parse_iso(job.updated_at) if job.status in TERMINAL_STATUSES else (now or datetime.now(UTC))
    return (end - parse_iso(job.created_at)).total_seconds()


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLE.get(status, ""))


# ----- one job -----
def describe(job: Job, console: Console, samples: Sequence[Sample] = ()) -> None:
    """A job's details, its dataset survey, its sample images (the job's `samples`, or its rows while they render)
    and its history as a timeline."""
    data = job.public()
    data.get("params", {}).pop("sample_prompts", None)  # shown as the samples, prompt by prompt
    details = Table.grid(padding=(0, 2))
    details.add_column(style="bold")
    details.add_column(overflow="fold")  # a narrow terminal folds a long URI: it stays whole to copy
    details.add_row("job", job.job_id)
    details.add_row("status", status_text(job.status.value))
    details.add_row("source", f"s3://{job.source_bucket}/{job.source_key}")
    if job.params:
        details.add_row("params", ", ".join(f"{k}={v}" for k, v in data["params"].items()))
    if job.dataset:
        details.add_row("dataset", dataset_summary(data["dataset"]))
    elif job.archive:  # a job from before the dataset survey
        details.add_row("archive", f"{job.archive['images']} images, {job.archive['captions']} captions")
    if job.archive and "bytes_read" in job.archive:
        details.add_row("read", reading_summary(data["archive"], job.source_size))
    _attempt_rows(job, details)
    details.add_row("time", " · ".join(f"{name} {span(s)}" for name, s in phases(job).items()))
    for warning in job.warnings:
        details.add_row("warning", Text(warning, style="yellow"))
    if job.error:
        details.add_row("error", Text(f"[{job.error_code}] {job.error}", style="red"))
    if job.weights_uri:
        details.add_row("weights", job.weights_uri)
        details.add_row("size", f"{job.weights_size:,} bytes")
        details.add_row("sha256", str(job.weights_sha256))
    if job.model_card_uri:
        details.add_row("card", job.model_card_uri)
    samples = _samples_row(job, samples, details)
    console.print(details)
    if samples:
        console.print(samples_table(samples))
    console.print(timeline(job))


def _samples_row(job: Job, samples: Sequence[Sample], details: Table) -> Sequence[Sample]:
    """The samples in a line; the ones to list prompt by prompt (none when the job never had a LoRA)."""
    if not samples:
        return ()
    if job.status in (JobStatus.FAILED, JobStatus.REJECTED) and {s.get("state") for s in samples} == {"waiting"}:
        details.add_row("samples", f"{len(samples)} asked for: none rendered, the job did not complete")
        return ()
    details.add_row("samples", samples_summary(samples, job.samples_settled_at))
    return samples


def _attempt_rows(job: Job, details: Table) -> None:
    """What the job's WaveSpeed task cost and where it stands: the task, the quote, earlier tasks, settling."""
    if job.prediction_id:
        details.add_row("task", f"{job.prediction_id} (attempts: {job.attempts})")
    if job.quote_usd is not None:
        details.add_row("price", f"{job.quote_usd:.2f} USD (WaveSpeed's quote, before the task was started)")
    if job.stray_tasks:
        strays = f"{', '.join(job.stray_tasks)}: earlier attempts' tasks, paid for (outputs at WaveSpeed ~7 days)"
        details.add_row("stray", Text(strays, style="yellow"))
    if job.status is JobStatus.SUBMITTING and job.settling is not None:
        progress = job.settling
        found = f"{progress.checked} tasks in WaveSpeed's history checked, {progress.requests} requests"
        if progress.absent_since:
            found += f"; none was this upload's at {progress.absent_since} (confirming)"
        details.add_row("settling", found)


def timeline(job: Job) -> Table:
    table = Table(title="history", title_justify="left", box=None, padding=(0, 2), pad_edge=False)
    for column in ("at", "after", "status", "what happened"):
        table.add_column(column, no_wrap=column != "what happened", overflow="fold")
    start = parse_iso(job.created_at)
    for entry in job.history:
        at = entry.at or ""
        after = f"+{span((parse_iso(at) - start).total_seconds())}" if at else ""
        what = " ".join(
            part for part in (f"task {entry.prediction_id}" if entry.prediction_id else "", entry.note) if part
        )
        table.add_row(at, after, status_text(entry.status or ""), what)
    if job.history_omitted:
        table.add_row("", "", "", f"({job.history_omitted} entries in between not kept)")
    return table


def dataset_summary(dataset: dict[str, Any]) -> str:
    """The survey in one line: counts, formats, sizes, captions."""
    parts = [f"{dataset['images']} images: {dataset['distinct']} distinct, {dataset['usable']} usable"]
    parts.append(", ".join(f"{kind} {count}" for kind, count in dataset.get("formats", {}).items()))
    if "smallest" in dataset:
        same = dataset["smallest"] == dataset["largest"]
        sizes = dataset["smallest"] if same else f"{dataset['smallest']} to {dataset['largest']}"
        parts.append(f"{sizes}, {dataset['megapixels']:g} MP in all")
    captioned = f"{dataset['captions']} of {dataset['images']} captioned"
    if "captions_mentioning_trigger" in dataset:
        captioned += (
            f" ({dataset['captions_mentioning_trigger']} of {dataset['captions_with_text']} name the trigger word)"
        )
    parts.append(captioned)
    if dataset.get("not_surveyed"):
        parts.append(f"{dataset['not_surveyed']} not surveyed")
    return " · ".join(part for part in parts if part)


def reading_summary(archive: dict[str, Any], size: int | None) -> str:
    """What inspecting the upload cost, against its size."""
    whole = f" of {size:,}" if size else ""
    text = (
        f"{archive['bytes_read']:,}{whole} bytes in {archive['range_reads']} range GET(s), "
        f"at most {archive.get('survey_bytes_per_image_max', 0):,} per image"
    )
    if archive.get("captions_read"):
        text += f"; {archive['caption_bytes_read']:,} for {archive['captions_read']} caption(s)"
    return text


# ----- many jobs -----
def jobs_table(jobs: Sequence[Job], now: datetime | None = None) -> Table:
    now = now or datetime.now(UTC)
    table = Table(box=None, padding=(0, 2), pad_edge=False)
    for column, justify in (
        ("NAME", "left"),
        ("JOB", "left"),
        ("STATUS", "left"),
        ("AGE", "right"),
        ("DURATION", "right"),
        ("IMAGES", "right"),
        ("NOTE", "left"),
    ):
        # On a terminal the note is cut to the width left (…); a file or pipe gets all of it.
        table.add_column(column, justify=justify, no_wrap=True, overflow="ellipsis")  # type: ignore[arg-type]
    for job in jobs:
        images = str(job.dataset["images"] if job.dataset else job.archive["images"] if job.archive else "-")
        note = f"[{job.error_code}] {job.error}" if job.error else job.weights_uri or ""
        table.add_row(
            job.name,
            job.job_id,
            status_text(job.status.value),
            span((now - parse_iso(job.created_at)).total_seconds()),
            span(duration(job, now)),
            images,
            note,
        )
    return table


# ----- waiting and transfers -----
def follow_line(job: Job | None, elapsed: float) -> Text:
    status = job.status.value if job else "WAITING"
    line = Text(f"[{clock(elapsed)}] ")
    line.append(f"{status:<10}", style=STATUS_STYLE.get(status, ""))
    line.append(f" {STATUS_WORDS.get(status, "waiting for S3's notification")}")
    if job:
        line.append("  " + " · ".join(f"{name} {span(s)}" for name, s in phases(job).items()), style="dim")
    line.no_wrap, line.overflow = True, "ellipsis"  # one line, however narrow the terminal
    return line


def follow(
    poll: Callable[[], Job | None], timeout: float, console: Console, on_timeout: Callable[[], Exception]
) -> Job:
    """Poll until the job ends: a live status line on a terminal (state, elapsed time, phases), a line
    per state change otherwise. Raises `on_timeout()` after `timeout` seconds."""

    def shown(job: Job | None, elapsed: float) -> tuple[str, Text]:
        return (job.status.value if job else "WAITING"), follow_line(job, elapsed)

    def ended(job: Job | None) -> bool:
        return job is not None and job.status in TERMINAL_STATUSES

    job = watch(poll, shown, ended, timeout=timeout, console=console, on_timeout=on_timeout)
    assert job is not None  # watch returns only what `done` accepted
    return job


def samples_line(samples: Sequence[Sample], elapsed: float) -> Text:
    """The live line while a job's samples render: `[00:03] samples    1 done, 1 rendering`."""
    line = Text(f"[{clock(elapsed)}] ")
    line.append(f"{'samples':<10}", style="bold")
    line.append(f" {counts(samples) or 'none asked for'}")
    line.no_wrap, line.overflow = True, "ellipsis"
    return line


def watch[Watched](  # noqa: PLR0913 - what to poll, how to show it, when to stop
    poll: Callable[[], Watched],
    shown: Callable[[Watched, float], tuple[str, Text]],
    done: Callable[[Watched], bool],
    *,
    timeout: float,
    console: Console,
    on_timeout: Callable[[], Exception],
) -> Watched:
    """Poll until `done`: a live line on a terminal, a line per change of state (`shown`'s first part) otherwise.
    Raises `on_timeout()` after `timeout` seconds."""
    started = time.monotonic()
    last = ""
    with Live(console=console, auto_refresh=False, transient=False) if console.is_terminal else _nothing() as live:
        while True:
            elapsed = time.monotonic() - started
            found = poll()
            state, line = shown(found, elapsed)
            if live is not None:
                live.update(line, refresh=True)
            elif state != last:
                console.print(line)
            last = state
            if done(found):
                return found
            if elapsed > timeout:
                raise on_timeout()
            time.sleep(0.2 if elapsed < 10 else 2.0)


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


@contextmanager
def transfer_bar(console: Console, description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A progress bar for bytes moving (size, rate, time left); yields the function that advances it."""
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal,
    )
    with progress:
        task = progress.add_task(description, total=total)
        yield lambda amount: progress.advance(task, amount)
