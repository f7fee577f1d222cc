"""`loradrop local`: the local stack in the foreground until Ctrl-C, and how to reach it.

With `loradrop_cli.demo`, the only part of the command that imports the local stack (moto's server, the
WaveSpeed simulator, SAM's emulators); `cli` imports this module only when `loradrop local` runs.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
from collections import Counter
from contextlib import ExitStack
from typing import TYPE_CHECKING, TextIO

from loradrop_cli.commands import EXIT_OK
from loradrop_cli.job_client import CliError
from loradrop_local.aws.stack import PROFILE, LocalStack, StackOptions

if TYPE_CHECKING:
    from loradrop_local.sam.emulators import SamEmulators


def run_local_stack(args: argparse.Namespace, out: TextIO) -> int:
    options = _options(args)
    args.state_dir.mkdir(parents=True, exist_ok=True)
    running = ExitStack()
    emulators: SamEmulators | None = None
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
        _how_to_reach(stack, emulators, args, out)
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


def _options(args: argparse.Namespace) -> StackOptions:
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
    return options


def _how_to_reach(stack: LocalStack, emulators: SamEmulators | None, args: argparse.Namespace, out: TextIO) -> None:
    """Where everything is, how to point the AWS CLI at it, and what to run next."""
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
    out.write(f"  aws s3 cp photos.zip s3://{stack.uploads_bucket}/uploads/photos.zip --metadata trigger-word=zxq\n")
    out.write("Or, in another terminal:  loradrop submit ./my-photos --wait -o lora.safetensors\n")
    if emulators is not None:
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
