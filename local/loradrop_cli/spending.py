"""What training costs, from the command line: `loradrop submit --quote` (WaveSpeed's price for a folder and
parameters, nothing uploaded) and `loradrop budget` (a month's reserved and billed total).

Both read the stack's settings where SubmitTraining reads them (its environment: the trainer, the defaults, the
limits, WaveSpeed's address and the secret's name), so a quote here is the quote the upload would get.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from decimal import Decimal
from typing import Any, TextIO

from botocore.exceptions import BotoCoreError, ClientError

from loradrop.budgets import MonthTotals, month_of, usd
from loradrop.job import utc_now
from loradrop.models import TrainingParams
from loradrop.samples import SAMPLE_MODEL, render_prompt, request_body
from loradrop.settings import SettingsError, SubmitSettings
from loradrop.wavespeed import WaveSpeedClient, WaveSpeedError
from loradrop_cli.job_client import CliError, Target
from loradrop_cli.view import console_for

EXIT_OK = 0
# Stand for the upload's and the LoRA's links: the price depends on the model and the steps (an image's on its
# size), not on where the files are.
QUOTE_DATA_URL = "https://uploads.invalid/quote.zip"
QUOTE_LORA_URL = "https://weights.invalid/quote.safetensors"


def _settings(target: Target) -> SubmitSettings:
    """SubmitTraining's settings, read from its environment as it reads them."""
    try:
        return SubmitSettings.from_mapping(target.submit_environment())
    except SettingsError as err:
        raise CliError(f"cannot read SubmitTraining's settings on {target.description}: {err}") from None


def _wavespeed(target: Target, settings: SubmitSettings) -> WaveSpeedClient:
    """A WaveSpeed client with the stack's own key (read from its secret, never printed)."""
    secret_id = settings.wavespeed_secret_id
    try:
        secret = json.loads(target.secrets.get_secret_value(SecretId=secret_id)["SecretString"])
    except (ClientError, BotoCoreError, ValueError, KeyError) as err:
        raise CliError(f"cannot read the WaveSpeed key from the secret {secret_id!r}: {type(err).__name__}") from None
    return WaveSpeedClient(settings.wavespeed_api_base, secret["api_key"])


def quote_params(settings: SubmitSettings, metadata: dict[str, str]) -> TrainingParams:
    """The parameters SubmitTraining would send: the upload's metadata over the stack's defaults."""
    params, _ = TrainingParams.from_metadata(metadata, TrainingParams.build(settings.training_defaults()))
    return params


def print_quote(target: Target, metadata: dict[str, str], out: TextIO) -> int:
    """WaveSpeed's price for these parameters (and sample images) on this stack, and what the stack's limits would
    make of it."""
    settings = _settings(target)
    params = quote_params(settings, metadata)
    wavespeed = _wavespeed(target, settings)
    try:
        price = wavespeed.quote(params.model, params.to_wavespeed(QUOTE_DATA_URL))
        per_image = _image_price(wavespeed, params)
        balance: Decimal | None = None
        with contextlib.suppress(WaveSpeedError):  # the balance is a hint here; the quote is the answer
            balance = wavespeed.balance()
    except WaveSpeedError as err:
        raise CliError(f"WaveSpeed gave no price: {err.message}") from None
    finally:
        wavespeed.close()
    console = console_for(out)
    console.print(
        f"WaveSpeed quotes {usd(price)} for {params.steps} steps on {params.model} (rank {params.lora_rank}, "
        f"learning rate {params.learning_rate}); nothing was uploaded"
    )
    count = len(params.sample_prompts)
    samples = (per_image or Decimal(0)) * count
    if count:
        each = f"{per_image:.3f} USD each, {samples:.3f} USD in all" if per_image is not None else "no price given"
        console.print(f"and {count} sample image(s) on {SAMPLE_MODEL}: {each}")
    maximum, monthly = settings.max_job_usd, settings.monthly_budget_usd
    if maximum is not None:
        verdict = _verdict(price, samples, maximum, ("within it", "over it"), "OVER_BUDGET")
        console.print(f"MaxJobUsd       {usd(maximum)}: {verdict}")
    if monthly is not None:
        totals = target.jobs.month_totals(month_of(utc_now()))
        left = monthly - totals.committed_usd
        verdict = _verdict(price, samples, left, ("fits", "does not fit"), "BUDGET_EXHAUSTED")
        console.print(f"MonthlyBudgetUsd {usd(monthly)}, {usd(left)} left in {totals.month}: {verdict}")
    if balance is not None:
        note = "" if balance >= price else ": too low, the upload would wait until the account is topped up"
        console.print(f"balance         {usd(balance)}{note}")
    return EXIT_OK


def _image_price(wavespeed: WaveSpeedClient, params: TrainingParams) -> Decimal | None:
    """WaveSpeed's price of one sample image (each is one 1024x1024 image: the same price), None when no sample is
    asked for or WaveSpeed gives no price (a stack with a limit then refuses the samples, not the training)."""
    if not params.sample_prompts:
        return None
    body = request_body(render_prompt(params.sample_prompts[0], params.trigger_word), 0, QUOTE_LORA_URL)
    try:
        return wavespeed.quote(SAMPLE_MODEL, body)
    except WaveSpeedError:
        return None


def _verdict(training: Decimal, samples: Decimal, room: Decimal, words: tuple[str, str], code: str) -> str:
    """What a limit with `room` left makes of the training quote, then of the samples' beside it (`words`: how it
    says fits, does not fit)."""
    fits, too_much = words
    if training > room:
        return f"{too_much}: the upload would be REJECTED {code}"
    if training + samples > room:
        return f"{fits} for the training, not with its samples ({usd(training + samples)}): samples would fail {code}"
    return fits + (" with its samples" if samples else "")


def cmd_budget(args: argparse.Namespace, out: TextIO, target: Target) -> int:
    month = args.month or month_of(utc_now())
    totals = target.jobs.month_totals(month)
    try:
        limit = _settings(target).monthly_budget_usd
    except CliError:  # no right to read the function's settings: the limit the month was last reserved under
        limit = totals.limit_usd
    if args.json:
        out.write(json.dumps(_as_dict(totals, limit), indent=2) + "\n")
        return EXIT_OK
    console = console_for(out)
    console.print(f"{month} on {target.description}")
    if limit is None and not totals.committed_usd:
        console.print("  MonthlyBudgetUsd is not set on this stack: quotes are recorded on each job, not added up")
        return EXIT_OK
    console.print(f"  limit      {usd(limit) + ' (MonthlyBudgetUsd)' if limit is not None else 'none (unset)'}")
    console.print(f"  reserved   {usd(totals.committed_usd)}  quotes of tasks that may exist")
    console.print(f"    billed   {usd(totals.billed_usd)}  of jobs that completed")
    console.print(
        f"    other    {usd(totals.in_flight_usd)}  not completed: training, being settled, or failed "
        "(WaveSpeed bills failed tasks too)"
    )
    if limit is not None:
        console.print(f"  left       {usd(limit - totals.committed_usd)}")
    return EXIT_OK


def _as_dict(totals: MonthTotals, limit: Decimal | None) -> dict[str, Any]:
    return {
        "month": totals.month,
        "limit_usd": float(limit) if limit is not None else None,
        "reserved_usd": float(totals.committed_usd),
        "billed_usd": float(totals.billed_usd),
        "not_completed_usd": float(totals.in_flight_usd),
    }
