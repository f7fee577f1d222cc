"""`loradrop`: run the local stack, submit training data, watch jobs, fetch weights.

Works against the local stack (`--local`, the default when one is running) or a deployed stack
(`--stack NAME`, resources found from its CloudFormation outputs).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TextIO

from botocore.exceptions import BotoCoreError, ClientError

from loradrop.jobs import Job
from loradrop.messages import StoreRequest, SubmitRequest
from loradrop.models import (
    PARAMETER_METADATA,
    InvalidParameters,
    JobStatus,
    TrainingParams,
    retry_kind,
)
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
from loradrop_cli.view import console_for, describe, jobs_table
from loradrop_local.aws.stack import PROFILE

DEFAULT_STATE_DIR = Path(".loradrop")
# What a script can rely on: the job's state, or why loradrop could not do what was asked.
EXIT_OK, EXIT_JOB_FAILED, EXIT_USAGE, EXIT_REJECTED, EXIT_RUNNING = 0, 1, 2, 3, 4
EXIT_CODES = f"""exit codes (submit --wait, retry --wait, status):
  {EXIT_OK}  the job COMPLETED (other commands: done)
  {EXIT_JOB_FAILED}  the job ended FAILED
  {EXIT_USAGE}  loradrop could not do what was asked (bad arguments, no stack, no such job)
  {EXIT_REJECTED}  the job was REJECTED (the upload or its parameters)
  {EXIT_RUNNING}  the job has not ended yet (status), or --wait gave up waiting"""


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
    try:
        TrainingParams.build(given)  # the same rules the Lambda applies, before anything is uploaded
    except InvalidParameters as err:
        raise CliError(f"invalid training parameters: {err}") from None
    return {PARAMETER_METADATA[field][0]: _metadata_text(str(value)) for field, value in given.items()}


def _metadata_text(value: str) -> str:
    """S3 metadata travels in HTTP headers (botocore refuses non-ASCII): send non-ASCII values
    RFC 2047-encoded, the form S3 itself returns them in and SubmitTraining decodes."""
    if value.isascii():
        return value
    from email.header import Header

    return Header(value, "utf-8").encode()


def _training_bytes(path: Path) -> bytes:
    from loradrop_local.dataset import zip_folder

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


def cmd_submit(args: argparse.Namespace, out: TextIO) -> int:
    metadata = _metadata_from_args(args)
    body = _training_bytes(args.path)
    target = resolve_target(args)
    console = console_for(out)
    name = args.name or args.path.resolve().name.removesuffix(".zip").removesuffix(".ZIP")
    key = f"uploads/{name}.zip"
    job_id = upload(target, key, body, metadata, console)
    console.print(f"uploaded s3://{target.uploads_bucket}/{key} ({len(body):,} bytes) to {target.description}")
    console.print(f"job id   {job_id}  (follow it: loradrop status {job_id})")
    if not args.wait:
        return EXIT_OK
    job = follow_job(target, job_id, args.timeout, out)
    describe(job, console)
    if job.status is JobStatus.COMPLETED and args.output:
        download_weights(target, job, args.output, console)
    return exit_code(job)


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
    job = _get_job(resolve_target(args), args.job)
    if args.json:
        out.write(json.dumps(job.public(), indent=2) + "\n")
    else:
        describe(job, console_for(out))
    return exit_code(job)


def cmd_fetch(args: argparse.Namespace, out: TextIO) -> int:
    target = resolve_target(args)
    job = _get_job(target, args.job)
    console = console_for(out)
    download_weights(target, job, args.output, console)
    if args.card:
        download_card(target, job, args.output, console)
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
    describe(ended, console_for(out))
    return exit_code(ended)


def cmd_local(args: argparse.Namespace, out: TextIO) -> int:
    from loradrop_local.aws.stack import LocalStack, StackOptions

    parameters = {"NotifyEmail": args.notify_email} if args.notify_email else {}
    options = StackOptions(state_dir=args.state_dir, log_file=args.state_dir / "handlers.log", parameters=parameters)
    if args.wavespeed_api:
        key = os.environ.get("WAVESPEED_API_KEY")
        if not key:
            raise CliError("--wavespeed-api needs your API key in the WAVESPEED_API_KEY environment variable")
        # No public webhook URL reaches this machine: the reconciler polls instead, at real-time pace.
        options = StackOptions(
            state_dir=args.state_dir,
            log_file=args.state_dir / "handlers.log",
            time_scale=1.0,
            reconcile_every=30,
            reconcile_after=30,
            wavespeed_api=args.wavespeed_api,
            wavespeed_api_key=key,
            parameters=parameters,
        )
    args.state_dir.mkdir(parents=True, exist_ok=True)
    running = ExitStack()
    if args.sam:
        from loradrop_local.sam.emulators import sam_problem, stack_in_sam

        problem = sam_problem()
        if problem:
            raise CliError(f"--sam cannot run: {problem}")
        out.write("Starting the local stack and SAM's emulators (start-lambda, start-api) on the built functions...\n")
        out.flush()
        stack, emulators = running.enter_context(stack_in_sam(options, args.state_dir / "sam"))
    else:
        stack = running.enter_context(LocalStack(options))
    stopped = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    try:
        out.write(f"loradrop local stack is running (state in {args.state_dir}/, handler logs in handlers.log)\n")
        out.write(f"  AWS emulator (moto)   {stack.endpoint}\n")
        out.write(f"  WaveSpeed             {stack.wavespeed_api}\n")
        out.write(f"  webhook URL           {stack.webhook_url}\n")
        out.write(f"  uploads bucket        {stack.uploads_bucket}\n")
        out.write(f"  weights bucket        {stack.weights_bucket}\n")
        out.write(f"  jobs table            {stack.table_name}\n")
        kinds = Counter(reason.split(": ", 1)[0] for reason in stack.deployment.not_emulated.values())
        listed = ", ".join(f"{kind} x{count}" if count > 1 else kind for kind, count in sorted(kinds.items()))
        out.write(f"  not emulated          {listed} (README: Local development)\n\n")
        out.write("Point the AWS CLI or boto3 at it:\n")
        out.write(
            f"  export AWS_ENDPOINT_URL={stack.endpoint} AWS_DEFAULT_REGION=us-east-1 "
            f"AWS_SHARED_CREDENTIALS_FILE={args.state_dir / 'credentials'} AWS_PROFILE={PROFILE}\n"
            "  (the local admin's keys, valid while this stack runs: IAM is enforced)\n"
        )
        out.write(
            f"  aws s3 cp photos.zip s3://{stack.uploads_bucket}/uploads/photos.zip --metadata trigger-word=zxq\n"
        )
        out.write("Or, in another terminal:  loradrop submit ./my-photos --wait -o lora.safetensors\n")
        if args.sam:
            out.write(
                f"\nEvery handler runs in SAM's arm64 containers (their log: {emulators.log_file}). Run a sample the\n"
                "same way (a container of its own), with the stack's names and endpoint from the env file:\n"
                f"  AWS_SHARED_CREDENTIALS_FILE={args.state_dir / 'credentials'} AWS_PROFILE={PROFILE} \\\n"
                f"  sam local invoke ReconcileJobsFunction -e events/schedule.json {' '.join(emulators.arguments())}\n"
            )
        if args.notify_email:
            out.write(f"Job notifications for {args.notify_email} are shown here (no email leaves this machine).\n")
        out.write("Press Ctrl-C to stop.\n")
        out.flush()
        while not stopped.wait(0.5):
            for message in stack.notifications() if args.notify_email else []:
                out.write(f"notification to {args.notify_email}: {message}\n")
                out.flush()
    finally:
        running.close()
        (args.state_dir / "local.json").unlink(missing_ok=True)
        (args.state_dir / "credentials").unlink(missing_ok=True)
        out.write("stopped\n")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
    from loradrop_cli.demo import run_demo

    timeout = args.timeout if args.timeout is not None else (900 if args.sam else 60)
    return run_demo(args.state_dir, out, images=args.images, timeout=timeout, sam=args.sam)


# ----- parser -----
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loradrop",
        description="Turn a folder of photos into a trained FLUX LoRA: on the local stack or a deployed one.",
        epilog="Start with `loradrop demo`, or `loradrop local` and then `loradrop submit FOLDER --wait`.\n\n"
        + EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--local", action="store_true", help="use the local stack (default unless LORADROP_STACK is set)"
    )
    where.add_argument("--stack", metavar="NAME", help="use a deployed stack, found by its CloudFormation outputs")
    parser.add_argument("--region", help="AWS region of --stack (default: your AWS configuration)")
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path(os.environ.get("LORADROP_STATE_DIR", DEFAULT_STATE_DIR)),
        help="where the local stack keeps its state (default: .loradrop)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    local = commands.add_parser("local", help="run the local stack in the foreground (no AWS, no Docker)")
    local.add_argument("--wavespeed-api", metavar="URL", help="use the real WaveSpeed API (key from WAVESPEED_API_KEY)")
    local.add_argument(
        "--notify-email",
        metavar="ADDRESS",
        help="deploy with NotifyEmail=ADDRESS and print the message each job end would email",
    )
    local.add_argument(
        "--sam",
        action="store_true",
        help="run every handler in SAM's own emulators (sam local start-lambda/start-api), from what `sam build` made, "
        "in the arm64 Lambda image, and print how to `sam local invoke` the samples in events/ against the stack "
        "(needs Docker: README, Test with sam local)",
    )
    local.set_defaults(handler=cmd_local)

    demo = commands.add_parser("demo", help="run the whole pipeline once on a fresh local stack")
    demo.add_argument("--images", type=int, default=8, help="how many images the generated dataset has (default 8)")
    demo.add_argument("--timeout", type=float, help="seconds to wait for the job (default 60; with --sam 900)")
    demo.add_argument(
        "--sam",
        action="store_true",
        help="run every handler in SAM's own emulators (sam local start-lambda/start-api), from what `sam build` "
        "made, in the arm64 Lambda image (needs Docker: make sam-demo)",
    )
    demo.set_defaults(handler=cmd_demo)

    submit = commands.add_parser("submit", help="upload a folder or ZIP of training images")
    submit.add_argument("path", type=Path, help="a folder of images (zipped on the fly, captions kept) or a .zip")
    submit.add_argument("--name", help="object name under uploads/ (default: the folder or file name)")
    for field, (meta_key, rule) in PARAMETER_METADATA.items():
        kind: Any = str
        if field in ("steps", "lora_rank"):
            kind = int
        submit.add_argument(f"--{meta_key}", dest=field, type=kind, help=f"{rule} (default: the stack's)")
    submit.add_argument("--wait", action="store_true", help="follow the job until it ends")
    submit.add_argument("-o", "--output", type=Path, help="with --wait: download the weights to this file")
    submit.add_argument("--timeout", type=float, default=3 * 3600, help="seconds --wait waits (default 3 hours)")
    submit.set_defaults(handler=cmd_submit)

    jobs = commands.add_parser("jobs", help="list jobs, newest first")
    jobs.add_argument("--status", choices=[s.value for s in JobStatus], help="only jobs in this state")
    jobs.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    jobs.add_argument("--json", action="store_true", help="print the job items as JSON")
    jobs.set_defaults(handler=cmd_jobs)

    status = commands.add_parser(
        "status",
        help="one job: its state, dataset survey, parameters, weights and history",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    status.add_argument("job", help="the job id (printed by submit, listed by jobs)")
    status.add_argument("--json", action="store_true", help="print the job item as JSON")
    status.set_defaults(handler=cmd_status)

    retry = commands.add_parser(
        "retry",
        help="retry a FAILED job: copy its weights again, or resubmit it (retryable WaveSpeed failures)",
        description=(
            "Store failures (STORE_FAILED, STORE_TIMEOUT) copy the same task's weights again while WaveSpeed keeps "
            "them (about 7 days). Retryable WaveSpeed failures (5xxx codes, 1402, timeout, cancelled, lost "
            "submissions) start a new, paid task. Failures that need a new upload (bad input, moderation) or a "
            "look at WaveSpeed first (SUBMIT_UNSETTLED) are refused with the reason."
        ),
    )
    retry.add_argument("job", help="the job id")
    retry.add_argument("--wait", action="store_true", help="follow the job until it ends again")
    retry.add_argument("--timeout", type=float, default=3 * 3600, help="seconds --wait waits (default 3 hours)")
    retry.set_defaults(handler=cmd_retry)

    fetch = commands.add_parser("fetch", help="download a completed job's weights, verifying the SHA-256")
    fetch.add_argument("job", help="the job id")
    fetch.add_argument("-o", "--output", type=Path, required=True, help="file to write")
    fetch.add_argument(
        "--card",
        action="store_true",
        help="also save the model card beside it: NAME.model-card.json and NAME.README.md",
    )
    fetch.set_defaults(handler=cmd_fetch)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    args = build_parser().parse_args(argv)
    if getattr(args, "output", None) is not None and args.command == "submit" and not args.wait:
        sys.stderr.write("loradrop: error: -o/--output needs --wait\n")
        return EXIT_USAGE
    try:
        code: int = args.handler(args, out)
    except StillRunning as err:
        sys.stderr.write(f"loradrop: {err}\n")
        return EXIT_RUNNING
    except CliError as err:
        sys.stderr.write(f"loradrop: error: {err}\n")
        return EXIT_USAGE
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
