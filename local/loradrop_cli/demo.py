"""`loradrop demo` (`make demo`): the whole pipeline once, on a fresh local stack, with live progress: a ZIP in, the
weights, their model card and two sample images rendered with the new LoRA out, each checked.

With `local_stack`, the only part of the command that imports the local stack; `cli` imports this module
only when `loradrop demo` runs. It shows the job as `loradrop status` would (`job_client`, `view`).
"""

from __future__ import annotations

import json
import time
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from rich.console import Console

from loradrop.job import Job
from loradrop.models import JobStatus
from loradrop_cli.job_client import Target, download_card, download_weights, follow_job
from loradrop_cli.sample_client import download_samples, follow_samples, sample_states
from loradrop_cli.sample_view import gallery, where_to_open
from loradrop_cli.view import console_for, describe
from loradrop_local.aws.events import scheduled_event
from loradrop_local.aws.stack import LocalStack, StackOptions
from loradrop_local.dataset import training_zip
from loradrop_local.sam.emulators import sam_problem, stack_in_sam
from loradrop_local.simulator.model import SimulatorConfig

if TYPE_CHECKING:
    from loradrop_local.sam.emulators import SamEmulators

TRIGGER_WORD = "zxq"
# Two sample images rendered with the new LoRA: one paid WaveSpeed image each (the simulator's, here).
SAMPLE_PROMPTS = ("a portrait of {trigger} in a garden", "{trigger} on a beach at sunset")


def run_demo(state_dir: Path, out: TextIO, *, images: int = 8, timeout: float = 60, sam: bool = False) -> int:
    """The pipeline once. With `sam`, every handler runs in SAM's own emulators (`sam local start-lambda` and
    `start-api`), from what `sam build` made, in the arm64 Lambda image, against the same local stack."""
    state_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with ExitStack() as running:
        stack, emulators = _start(running, state_dir, out, sam)
        log_file = emulators.log_file if emulators is not None else state_dir / "demo-handlers.log"
        out.write(f"  ready in {time.monotonic() - started:.1f}s (handler logs: {log_file})\n\n")
        # Photo-sized JPEGs, as a phone would give (the survey reads their headers, not the whole ZIP).
        dataset = training_zip(images=images, captions=True, trigger_word=TRIGGER_WORD, size=1024, kind="JPEG")
        key = f"uploads/demo-{time.strftime('%Y%m%d-%H%M%S')}.zip"
        metadata = {
            "trigger-word": TRIGGER_WORD,
            "steps": "1000",
            "lora-rank": "16",
            "sample-prompts": " | ".join(SAMPLE_PROMPTS),
        }
        out.write(f"Uploading {images} generated 1024x1024 photos with captions ({len(dataset):,} bytes) to\n")
        out.write(f"  s3://{stack.uploads_bucket}/{key}\n  metadata: {metadata}\n\n")
        job_id = stack.upload(key, dataset, metadata)
        target = Target(
            description="the demo stack",
            s3=stack.client("s3"),
            dynamodb=stack.client("dynamodb"),
            uploads_bucket=stack.uploads_bucket,
            weights_bucket=stack.weights_bucket,
            table=stack.table_name,
            local=True,
        )
        console = console_for(out)
        job = follow_job(target, job_id, timeout, out)
        if job.status is JobStatus.COMPLETED:
            out.write(f"\nRendering {len(SAMPLE_PROMPTS)} sample images with the new LoRA (a paid image each):\n")
            out.flush()
            job = follow_samples(target, job_id, timeout, out)
        out.write("\nThe job record (DynamoDB):\n")
        out.flush()
        describe(job, console, sample_states(target, job))
        _show_events(stack, out, sam, samples=job.samples is not None)
        if job.status is not JobStatus.COMPLETED:
            out.write(f"\nThe job ended {job.status.value}: {job.error}\n")
            return 1
        if emulators is not None:
            out.write("\nThe reconciler, once, through `sam local start-lambda`:\n")
            out.write(f"  {stack.invoke('ReconcileJobsFunction', scheduled_event())['summary']}\n")
            ran = emulators.handlers_run()
            out.write(
                "Handlers SAM ran in its arm64 containers: " + ", ".join(f"{h} x{n}" for h, n in ran.items()) + "\n"
            )
        folder = state_dir / job.job_id  # a folder per job: its README's gallery links samples/ beside it
        readme = _show_weights_and_card(target, job, folder / f"{job.job_id}.safetensors", console, out)
        _show_samples(target, job, readme, console, out)
        out.write(f"\nDone in {time.monotonic() - started:.1f}s: ZIP in, weights, sample images and job record out.\n")
    return 0


def _start(running: ExitStack, state_dir: Path, out: TextIO, sam: bool) -> tuple[LocalStack, SamEmulators | None]:
    """The local stack (and, with `sam`, SAM's emulators), stopped when `running` closes."""
    # A short, visible "training": the simulator takes a couple of seconds and serves a 24 MiB LoRA.
    options = StackOptions(
        log_file=state_dir / "demo-handlers.log",
        simulator=SimulatorConfig(processing_after=0.5, train_seconds=2.0, output_size=24 * 1024 * 1024),
    )
    if sam:
        problem = sam_problem()
        if problem:
            raise SystemExit(f"`--sam` cannot run: {problem}")
        out.write("Starting the local stack, and `sam local start-lambda` and `start-api` with what `sam build`\n")
        out.write("made, in the arm64 Lambda image (each handler's first run is a cold start under emulation)...\n")
        options.reconcile_every = 30.0  # a lost webhook costs seconds
        stack, emulators = running.enter_context(stack_in_sam(options, state_dir / "sam"))
        return stack, emulators
    out.write("Starting the local stack: moto's server (S3, SQS, DynamoDB, Secrets Manager, EventBridge, IAM),\n")
    out.write("the WaveSpeed simulator, and the Lambda functions, each in processes of its own with its\n")
    out.write("IAM role enforced (no AWS account, no Docker)...\n")
    return running.enter_context(LocalStack(options)), None


def _show_events(stack: LocalStack, out: TextIO, sam: bool, *, samples: bool) -> None:
    """The job's events: its end, and, once its samples all ended, "Samples Ready"."""
    expected = {"Job Completed", "Samples Ready"} if samples else set()
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + (180 if sam else 5)  # an emulated cold start of the publisher takes a while
    while (not events or not expected <= {e["detail-type"] for e in events}) and time.monotonic() < deadline:
        events += stack.drain_events()
        time.sleep(0.1)
    out.write("\nEvents published on the bus:\n")
    for event in events:
        detail = event["detail"]
        out.write(f"  {event['detail-type']}  source={event['source']}  job_id={detail['job_id']}\n")


def _show_weights_and_card(target: Target, job: Job, destination: Path, console: Console, out: TextIO) -> Path:
    """Download the weights (checked), show what the safetensors file holds, then the model card beside it; the
    card's README.md."""
    out.write("\nDownloading the weights and checking their SHA-256:\n  ")
    download_weights(target, job, destination, console)
    header_length = int.from_bytes(destination.read_bytes()[:8], "little")
    with destination.open("rb") as handle:
        handle.seek(8)
        tensors = [name for name in json.loads(handle.read(header_length)) if name != "__metadata__"]
    out.write(f"  a safetensors file with {len(tensors)} tensors, e.g. {tensors[0]}\n")
    out.write(f"\nThe model card beside the weights ({job.model_card_uri}):\n  ")
    card_path, readme_path = download_card(target, job, destination, console)
    card = json.loads(card_path.read_text())
    header = card["weights"]["safetensors"]
    timings = card["timings"]
    trained_on = f"trigger word {card['trigger_word']!r}" if card["trigger_word_used"] else "trained on captions"
    out.write(
        f"  {trained_on}, {header['tensors']} tensors "
        f"({', '.join(f'{k} {v}' for k, v in header['dtypes'].items())}), {header['parameters'] / 1e6:.1f} M "
        f"parameters; queued {timings['queued_seconds']:.1f} s, trained {timings['training_seconds']:.1f} s, "
        f"stored {timings['storing_seconds']:.1f} s\n  read it: {readme_path}\n"
    )
    return readme_path


def _show_samples(target: Target, job: Job, readme: Path, console: Console, out: TextIO) -> None:
    """Download the sample images (each checked), show them as a gallery and, on a terminal, where to open them."""
    out.write("\nThe sample images beside the weights, each checked against the SHA-256 on the job:\n")
    out.flush()
    saved = download_samples(target, job, readme, console)
    console.print(gallery(saved))
    if out.isatty():  # a terminal makes these links clickable; a log (CI) has no use for them
        out.write("\nOpen them:\n" + "".join(f"  {link}\n" for link in where_to_open(saved, readme)))
