"""`loradrop`: run the local stack, submit training data, watch jobs, fetch weights.

Works against the local stack (`--local`, the default when one is running) or a deployed stack
(`--stack NAME`, resources found from its CloudFormation outputs). The commands on a stack's jobs are in
`commands`; `local` and `demo` (`local_stack`, `demo`) import the local stack, and only when they run, so
`loradrop --stack prod jobs` loads neither moto nor the simulator.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from loradrop.models import PARAMETER_METADATA, JobStatus
from loradrop.samples import PROMPTS_RULE, SAMPLE_MODEL, TRIGGER_PLACEHOLDER
from loradrop_cli.commands import (
    EXIT_CODES,
    EXIT_OK,
    EXIT_RUNNING,
    EXIT_USAGE,
    cmd_budget,
    cmd_fetch,
    cmd_jobs,
    cmd_retry,
    cmd_status,
    cmd_submit,
)
from loradrop_cli.job_client import CliError, StillRunning

DEFAULT_STATE_DIR = Path(".loradrop")


# The two commands that start a local stack import it (moto, the simulator) when they run, not before.
def cmd_local(args: argparse.Namespace, out: TextIO) -> int:
    from loradrop_cli.local_stack import run_local_stack

    return run_local_stack(args, out)


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
    _add_local_stack_commands(commands)
    _add_submit(commands)
    _add_job_commands(commands)
    return parser


Subcommands = argparse._SubParsersAction  # what add_subparsers returns (argparse does not export its name)


def _add_local_stack_commands(commands: Subcommands) -> None:
    """`local` and `demo`: the commands that start a local stack."""
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
    demo.add_argument(
        "--timeout", type=float, help="seconds to wait for the job, then for its samples (default 60; with --sam 900)"
    )
    demo.add_argument(
        "--sam",
        action="store_true",
        help="run every handler in SAM's own emulators (sam local start-lambda/start-api), from what `sam build` "
        "made, in the arm64 Lambda image (needs Docker: make sam-demo)",
    )
    demo.set_defaults(handler=cmd_demo)


def _add_submit(commands: Subcommands) -> None:
    submit = commands.add_parser(
        "submit",
        help="check a folder or ZIP of training images, then upload it",
        description=(
            "Before uploading, runs the checks SubmitTraining runs (duplicates, formats, sizes; captions that are\n"
            "empty, not UTF-8 or never name the trigger word; zip tools' junk, images stored turned, odd names)\n"
            "and prints what the job will say. --fix uploads a clean archive instead: junk left out, JPEGs turned\n"
            "upright by their EXIF orientation, captions re-encoded as UTF-8."
        ),
        epilog="--check exits 0, or 3 when a stack with DatasetPolicy=strict would reject the upload.\n\n" + EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    submit.add_argument("path", type=Path, help="a folder of images (zipped on the fly, captions kept) or a .zip")
    submit.add_argument("--check", action="store_true", help="only check (and --fix) the dataset: upload nothing")
    submit.add_argument(
        "--fix",
        action="store_true",
        help="upload a clean archive: no junk, JPEGs turned upright (pixels, not EXIF), captions as UTF-8",
    )
    submit.add_argument("--name", help="object name under uploads/ (default: the folder or file name)")
    for field, (meta_key, rule) in PARAMETER_METADATA.items():
        kind: Any = str
        if field in ("steps", "lora_rank"):
            kind = int
        if field != "sample_prompts":  # --sample-prompt, one prompt a time (below)
            submit.add_argument(f"--{meta_key}", dest=field, type=kind, help=f"{rule} (default: the stack's)")
    submit.add_argument(
        "--sample-prompt",
        dest="sample_prompts",
        action="append",
        metavar="TEXT",
        help=f"a prompt to render with the new LoRA once it is trained: one paid {SAMPLE_MODEL} image each "
        f"(WaveSpeed's price per image, held to MaxJobUsd and MonthlyBudgetUsd), stored beside the weights. Repeat "
        f"it for more: {PROMPTS_RULE}. {TRIGGER_PLACEHOLDER} stands for the trigger word, which is put in front "
        "of a prompt that does not name it. Without it, the stack's SamplePrompts apply (by default none); "
        "--sample-prompt '' asks for none",
    )
    submit.add_argument(
        "--quote",
        action="store_true",
        help="print WaveSpeed's price for these parameters on this stack, and what its MaxJobUsd, MonthlyBudgetUsd "
        "and the account's balance make of it; nothing is uploaded",
    )
    submit.add_argument("--wait", action="store_true", help="follow the job until it ends")
    submit.add_argument("-o", "--output", type=Path, help="with --wait: download the weights to this file")
    submit.add_argument("--timeout", type=float, default=3 * 3600, help="seconds --wait waits (default 3 hours)")
    submit.set_defaults(handler=cmd_submit)


def _month(text: str) -> str:
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a month as YYYY-MM (e.g. 2026-12)")
    return text


def _add_job_commands(commands: Subcommands) -> None:
    """`jobs`, `status`, `retry`, `budget` and `fetch`: reading and acting on the jobs of a stack."""
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

    budget = commands.add_parser(
        "budget",
        help="a month's spending: quotes reserved for tasks that may exist, billed for completed jobs, the limit",
    )
    budget.add_argument("--month", type=_month, help="YYYY-MM, UTC (default: this month)")
    budget.add_argument("--json", action="store_true", help="print the totals as JSON")
    budget.set_defaults(handler=cmd_budget)

    _add_fetch(commands)


def _add_fetch(commands: Subcommands) -> None:
    fetch = commands.add_parser(
        "fetch",
        help="download a completed job's weights (and its model card, its sample images), verifying each SHA-256",
        epilog="Fetch each job into a folder of its own: its sample images go to samples/ there.\n\n"
        f"exits {EXIT_OK} once everything asked for is saved and verified, {EXIT_USAGE} when it cannot be (the job not "
        f"COMPLETED, no samples asked for, a checksum mismatch), {EXIT_RUNNING} while the samples still render.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    fetch.add_argument("job", help="the job id")
    fetch.add_argument("-o", "--output", type=Path, required=True, help="file to write")
    fetch.add_argument(
        "--card",
        action="store_true",
        help="also save the model card beside it: NAME.model-card.json and NAME.README.md (its gallery shows the "
        "samples --samples saves)",
    )
    fetch.add_argument(
        "--samples",
        action="store_true",
        help="also save the job's sample images beside it, in samples/ (samples/1.png…, as the README's gallery "
        "links them); while they render, exits 4 saving nothing, unless --wait",
    )
    fetch.add_argument(
        "--wait", action="store_true", help="wait for the job to end and, with --samples, its images to be stored"
    )
    fetch.add_argument("--timeout", type=float, default=3 * 3600, help="seconds --wait waits (default 3 hours)")
    fetch.set_defaults(handler=cmd_fetch)


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
