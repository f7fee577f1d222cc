"""The commands that work on a stack's jobs — the local stack or a deployed one: `submit`, `jobs`,
`status`, `fetch` and `retry`, and the exit codes a script can rely on."""

from __future__ import annotations

import argparse
import io
import json
import os
import time
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from botocore.exceptions import BotoCoreError, ClientError

from loradrop.job import Job
from loradrop.messages import StoreRequest, SubmitRequest
from loradrop.models import (
    PARAMETER_METADATA,
    TERMINAL_STATUSES,
    InvalidParameters,
    JobStatus,
    TrainingParams,
    retry_kind,
)
from loradrop.samples import PROMPTS_RULE, parse_prompts
from loradrop_cli.job_client import (
    CliError,
    StillRunning,
    Target,
    download_card,
    download_weights,
    follow_job,
    local_target,
    stack_target,
    upload,
)
from loradrop_cli.preflight import check, clean, show, trigger_word_for
from loradrop_cli.sample_client import download_samples, sample_states, samples_ready
from loradrop_cli.sample_view import gallery, unsettled
from loradrop_cli.spending import cmd_budget as show_budget
from loradrop_cli.spending import print_quote
from loradrop_cli.view import console_for, describe, jobs_table

if TYPE_CHECKING:
    from rich.console import Console

# What a script can rely on: the job's state, or why loradrop could not do what was asked.
EXIT_OK, EXIT_JOB_FAILED, EXIT_USAGE, EXIT_REJECTED, EXIT_RUNNING = 0, 1, 2, 3, 4
EXIT_CODES = f"""exit codes (submit --wait, retry --wait, status):
  {EXIT_OK}  the job COMPLETED (other commands: done)
  {EXIT_JOB_FAILED}  the job ended FAILED
  {EXIT_USAGE}  loradrop could not do what was asked (bad arguments, no stack, no such job)
  {EXIT_REJECTED}  the job was REJECTED (the upload or its parameters)
  {EXIT_RUNNING}  the job has not ended yet (status), its samples still render (fetch --samples), or --wait
     gave up waiting"""


def exit_code(job: Job) -> int:
    if job.status is JobStatus.COMPLETED:
        return EXIT_OK
    if job.status is JobStatus.FAILED:
        return EXIT_JOB_FAILED
    if job.status is JobStatus.REJECTED:
        return EXIT_REJECTED
    return EXIT_RUNNING


def resolve_target(args: argparse.Namespace) -> Target:
    stack = args.stack or (None if args.local else os.environ.get("LORADROP_STACK"))
    return stack_target(stack, args.region) if stack else local_target(args.state_dir)


def _metadata_from_args(args: argparse.Namespace) -> dict[str, str]:
    given = {field: getattr(args, field) for field in PARAMETER_METADATA if getattr(args, field, None) is not None}
    if "sample_prompts" in given:
        given["sample_prompts"] = sample_prompts_text(given["sample_prompts"])
    try:
        TrainingParams.build(given)  # the same rules the Lambda applies, before anything is uploaded
    except InvalidParameters as err:
        raise CliError(f"invalid training parameters: {err}") from None
    return {PARAMETER_METADATA[field][0]: _metadata_text(str(value)) for field, value in given.items()}


def sample_prompts_text(prompts: list[str]) -> str:
    """Repeated --sample-prompt as the `sample-prompts` metadata (`a | b`), held to the rule SubmitTraining applies
    (`parse_prompts`); `--sample-prompt ''` alone asks for none, whatever the stack's SamplePrompts."""
    if any("|" in prompt for prompt in prompts):
        raise CliError("a --sample-prompt cannot contain |: the sample-prompts metadata separates prompts with it")
    text = " | ".join(prompt.strip() for prompt in prompts if prompt.strip())
    try:
        parse_prompts(text)
    except ValueError as err:
        raise CliError(f"invalid --sample-prompt ({err}): sample-prompts must be {PROMPTS_RULE}") from None
    return text


def _metadata_text(value: str) -> str:
    """S3 metadata travels in HTTP headers (botocore refuses non-ASCII): send non-ASCII values
    RFC 2047-encoded, the form S3 itself returns them in and SubmitTraining decodes."""
    if value.isascii():
        return value
    from email.header import Header

    return Header(value, "utf-8").encode()


def _training_bytes(path: Path) -> bytes:
    if path.is_dir():
        data = zip_folder(path)
        if len(data) <= 22:
            raise CliError(f"{path} has no files to upload")
        return data
    if path.is_file():
        if path.suffix.lower() != ".zip":
            raise CliError(f"{path} is not a .zip file or a folder")
        return path.read_bytes()
    raise CliError(f"{path} does not exist")


def zip_folder(folder: Path) -> bytes:
    """Zip a folder of images (and same-named .txt captions) in memory, skipping hidden files."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            relative = path.relative_to(folder)
            if path.is_file() and not any(part.startswith(".") for part in relative.parts):
                archive.write(path, relative.as_posix())
    return buffer.getvalue()


def _checked(body: bytes, args: argparse.Namespace, console: Console) -> tuple[bytes, bool]:
    """The archive to upload (cleaned with --fix) after SubmitTraining's checks have been printed, and
    whether a strict stack would reject it."""
    trigger_word, default = trigger_word_for(args.trigger_word)
    if args.fix:
        body, fixed = clean(body)
        console.print(f"fixed: {len(fixed) or 'nothing to fix'}" + "".join(f"\n  fixed    {fix}" for fix in fixed))
    verdict = check(body, trigger_word)
    show(verdict, trigger_word, default, console)
    return body, bool(verdict.unfit or verdict.rejected)


def cmd_submit(args: argparse.Namespace, out: TextIO) -> int:
    metadata = _metadata_from_args(args)
    console = console_for(out)
    body, unfit = _checked(_training_bytes(args.path), args, console)
    if args.check:
        return EXIT_REJECTED if unfit else EXIT_OK
    target = resolve_target(args)
    if args.quote:  # after the checks: a user sees what the set is worth and what it would cost
        return print_quote(target, metadata, out)
    name = args.name or args.path.resolve().name.removesuffix(".zip").removesuffix(".ZIP")
    key = f"uploads/{name}.zip"
    job_id = upload(target, key, body, metadata, console)
    console.print(f"uploaded s3://{target.uploads_bucket}/{key} ({len(body):,} bytes) to {target.description}")
    console.print(f"job id   {job_id}  (follow it: loradrop status {job_id})")
    if not args.wait:
        return EXIT_OK
    job = follow_job(target, job_id, args.timeout, out)
    show_job(target, job, console)
    if job.status is JobStatus.COMPLETED and args.output:
        download_weights(target, job, args.output, console)
    return exit_code(job)


def show_job(target: Target, job: Job, console: Console) -> None:
    """The job as `status` shows it, with its samples; while they render, how to get them once they are stored."""
    samples = sample_states(target, job)
    describe(job, console, samples)
    if job.status is JobStatus.COMPLETED and unsettled(samples):
        console.print(f"samples render: `loradrop fetch {job.job_id} -o FILE --samples --wait` downloads them")


def cmd_budget(args: argparse.Namespace, out: TextIO) -> int:
    return show_budget(args, out, resolve_target(args))


def cmd_jobs(args: argparse.Namespace, out: TextIO) -> int:
    target = resolve_target(args)
    jobs = target.jobs.list(JobStatus(args.status) if args.status else None, args.limit)
    if args.json:
        out.write(json.dumps([job.public() for job in jobs], indent=2) + "\n")
    elif not jobs:
        out.write("no jobs\n")
    else:
        console_for(out).print(jobs_table(jobs))
    return EXIT_OK


def _get_job(target: Target, job_id: str) -> Job:
    job = target.jobs.get(job_id)
    if job is None:
        raise CliError(f"no job {job_id!r} in {target.description}: list them with `loradrop jobs`")
    return job


def cmd_status(args: argparse.Namespace, out: TextIO) -> int:
    target = resolve_target(args)
    job = _get_job(target, args.job)
    if args.json:
        out.write(json.dumps(job.public(), indent=2) + "\n")
    else:
        show_job(target, job, console_for(out))
    return exit_code(job)


def cmd_fetch(args: argparse.Namespace, out: TextIO) -> int:
    target = resolve_target(args)
    job = _get_job(target, args.job)
    console = console_for(out)
    if args.wait and job.status not in TERMINAL_STATUSES:
        job = follow_job(target, job.job_id, args.timeout, out)
    if args.samples:  # before the weights: the card's gallery is written once the samples all ended
        job = samples_ready(target, job, wait=args.wait, timeout=args.timeout, out=out)
    download_weights(target, job, args.output, console)
    if args.card:
        download_card(target, job, args.output, console)
    if args.samples:
        console.print("the samples (each checked against the SHA-256 on the job):")
        console.print(gallery(download_samples(target, job, args.output, console)))
    return EXIT_OK


def cmd_retry(args: argparse.Namespace, out: TextIO) -> int:
    """Copy a FAILED job's weights again, or resubmit it, by the same messages the pipeline uses."""
    target = resolve_target(args)
    job = _get_job(target, args.job)
    kind = retry_kind(job.error_code) if job.status is JobStatus.FAILED else None
    if kind is None:
        why = f"it is {job.status.value}" if job.status is not JobStatus.FAILED else f"[{job.error_code}] {job.error}"
        raise CliError(f"job {job.job_id} cannot be retried: {why}")
    body: StoreRequest | SubmitRequest
    if kind == "store":
        assert job.prediction_id is not None  # retry_kind "store" means the task is known
        queue, body = target.store_queue_url, StoreRequest(job_id=job.job_id, prediction_id=job.prediction_id)
        out.write(f"copying the weights of task {job.prediction_id} again (WaveSpeed keeps outputs about 7 days)\n")
    else:
        queue, body = target.intake_queue_url, SubmitRequest(job_id=job.job_id, action="retry")
        out.write("submitting the upload to WaveSpeed again: this starts a new, paid training task\n")
    if not queue or target.sqs is None:
        raise CliError(f"{target.description} has no queue URL outputs: is it an older loradrop stack? Update it.")
    try:
        target.sqs.send_message(QueueUrl=queue, MessageBody=body.model_dump_json())
    except (ClientError, BotoCoreError) as err:
        raise CliError(f"could not queue the retry: {err}") from None
    if not args.wait:
        out.write(f"queued; follow it with `loradrop status {job.job_id}`\n")
        return EXIT_OK
    # Wait for the job to leave FAILED before following it to its next end.
    deadline = time.monotonic() + min(args.timeout, 120)
    while (current := _get_job(target, job.job_id)).updated_at == job.updated_at and time.monotonic() < deadline:
        time.sleep(0.2)
    if current.updated_at == job.updated_at:
        raise StillRunning(f"the retry was queued but the job has not moved yet: `loradrop status {job.job_id}`")
    ended = follow_job(target, job.job_id, args.timeout, out)
    show_job(target, ended, console_for(out))
    return exit_code(ended)
