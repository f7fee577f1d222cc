"""A stack deployed with spending limits, as `sam deploy --parameter-overrides MaxJobUsd=2 MonthlyBudgetUsd=1.5`
would set them: a job quoted over MaxJobUsd is REJECTED before any task exists, and two uploads at once against
a month with room for one start exactly one task. It runs in a process of its own (moto's state is per process);
the simulator prices the trainer at 1 USD per 1,000 steps."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]

RUN = """
import io, json, pathlib, tempfile, time
from loradrop.budgets import row_key
from loradrop_cli.cli import main
from loradrop_local.dataset import png
from loradrop.job import utc_now
from loradrop.jobs import JobStore
from loradrop_local.aws.stack import LocalStack, StackOptions
from tests.integration.test_dataset_insight import healthy_set
from tests.integration.helpers import TERMINAL, posts_for
from loradrop_dev.reliability.harness import SCENARIO_ENVIRONMENT
from tests.integration.helpers import reconcile
parameters = {"MaxJobUsd": "2", "MonthlyBudgetUsd": "2.5"}
options = StackOptions(
    parameters=parameters, run_reconciler=False, reconcile_after=0, extra_environment=dict(SCENARIO_ENVIRONMENT)
)
with LocalStack(options) as stack:
    # A POST dropped before WaveSpeed created anything: the reservation is held while the outcome is uncertain,
    # given back when ReconcileJobs (under its own role) proves no task, and taken again by the new attempt
    stack.simulator.faults.submit.append("drop_before_create")
    lost_id = stack.upload("uploads/lost.zip", healthy_set())
    table, row = stack.client("dynamodb"), {"job_id": {"S": row_key(utc_now()[:7])}}
    held = []
    while (stack.job(lost_id) or {}).get("error_code") != "SUBMIT_UNCERTAIN":
        time.sleep(0.05)
    held.append(table.get_item(TableName=stack.table_name, Key=row)["Item"]["committed_usd"]["N"])
    deadline = time.monotonic() + 30
    while (stack.job(lost_id) or {})["status"] == "SUBMITTING" and time.monotonic() < deadline:
        reconcile(stack)
        time.sleep(0.3)
    lost = stack.wait_for(lost_id, TERMINAL, timeout=30)
    over = stack.wait_for(stack.upload("uploads/long.zip", healthy_set(), {"steps": "3000"}), TERMINAL)
    both = [stack.upload(f"uploads/pair-{i}.zip", healthy_set()) for i in range(2)]
    pair = [stack.wait_for(job_id, TERMINAL, timeout=60) for job_id in both]
    state, folder = pathlib.Path(tempfile.mkdtemp()), pathlib.Path(tempfile.mkdtemp())
    stack.write_state(state)
    for i in range(4):
        (folder / f"ana_{i}.png").write_bytes(png(32, 32, i))
    cli = {}
    for name, argv in {
        "budget": ["budget"],
        "budget_json": ["budget", "--json"],
        "quote": ["submit", str(folder), "--quote", "--steps", "1500"],
        "quote_samples": ["submit", str(folder), "--quote", "--steps", "1980", "--sample-prompt", "a {trigger}",
                          "--sample-prompt", "b"],
    }.items():
        out = io.StringIO()
        cli[name] = (main(["--state-dir", str(state), *argv], out), out.getvalue())
    row = stack.client("dynamodb").get_item(TableName=stack.table_name, Key={"job_id": {"S": row_key(utc_now()[:7])}})
    print(json.dumps({
        "environment": stack.function_environment("SubmitTrainingFunction"),
        "lost": lost,
        "lost_posts": [p.status for p in posts_for(stack, "uploads/lost.zip")],
        "held": held,
        "over": over,
        "over_posts": len(posts_for(stack, "uploads/long.zip")),
        "pair": pair,
        "pair_posts": sum(len(posts_for(stack, f"uploads/pair-{i}.zip")) for i in range(2)),
        "pricing": [r.body for r in stack.simulator.requests if r.path == "/api/v3/model/pricing"],
        "month": {k: list(v.values())[0] for k, v in row["Item"].items()},
        "cli": cli,
        "listed": [job.job_id for job in JobStore(stack.client("dynamodb"), stack.table_name).list()],
    }, default=str))
"""


@pytest.fixture(scope="module")
def run() -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-c", RUN], capture_output=True, text=True, timeout=180, check=False, cwd=ROOT
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    found: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return found


def test_the_limits_reach_the_submitter(run: dict[str, Any]) -> None:
    environment = run["environment"]
    assert (environment["MAX_JOB_USD"], environment["MONTHLY_BUDGET_USD"]) == ("2", "2.5")


def test_a_job_quoted_over_max_job_usd_is_rejected_before_any_task(run: dict[str, Any]) -> None:
    over = run["over"]
    assert (over["status"], over["error_code"]) == ("REJECTED", "OVER_BUDGET")
    assert over["quote_usd"] == 3
    assert over["error"].startswith(
        "WaveSpeed quotes 3.00 USD for this job (3000 steps on wavespeed-ai/flux-dev-lora-trainer), over this "
        "stack's MaxJobUsd of 2.00 USD: train with fewer steps"
    )
    assert over["attempts"] == 0
    assert run["over_posts"] == 0
    # WaveSpeed was asked the price of exactly the body the POST would have sent
    asked = [body for body in run["pricing"] if body["inputs"].get("steps") == 3000]
    assert len(asked) == 1
    assert asked[0]["model_id"] == "wavespeed-ai/flux-dev-lora-trainer"
    assert "uploads/long.zip" in asked[0]["inputs"]["data"]


def test_two_uploads_at_once_against_a_month_with_room_for_one_start_exactly_one_task(run: dict[str, Any]) -> None:
    pair = sorted(run["pair"], key=lambda job: job["status"])
    assert [job["status"] for job in pair] == ["COMPLETED", "REJECTED"]
    completed, rejected = pair
    assert run["pair_posts"] == 1
    assert completed["quote_usd"] == 1
    assert completed["attempts"] == 1
    assert (rejected["error_code"], rejected["quote_usd"]) == ("BUDGET_EXHAUSTED", 1)
    assert rejected["error"].endswith(
        "MonthlyBudgetUsd 2.50 USD, of which 2.00 USD is committed) has no room for this job's quote of 1.00 USD: "
        "raise MonthlyBudgetUsd or wait for next month, then upload again. Nothing was paid"
    )
    assert rejected["attempts"] == 0


def test_the_month_row_holds_the_one_reserved_quote_as_billed_and_is_not_listed_as_a_job(
    run: dict[str, Any],
) -> None:
    month = run["month"]
    # the lost POST's job and one of the pair: two tasks, both completed
    assert (float(month["committed_usd"]), float(month["billed_usd"]), float(month["limit_usd"])) == (2.0, 2.0, 2.5)
    assert len(run["listed"]) == 4
    assert not any(job_id.startswith("budget#") for job_id in run["listed"])


def test_loradrop_budget_shows_the_months_reserved_and_billed_total(run: dict[str, Any]) -> None:
    code, text = run["cli"]["budget"]
    assert code == 0, text
    assert "limit      2.50 USD (MonthlyBudgetUsd)" in text
    assert "reserved   2.00 USD  quotes of tasks that may exist" in text
    assert "billed   2.00 USD  of jobs that completed" in text
    assert "left       0.50 USD" in text
    code, text = run["cli"]["budget_json"]
    assert json.loads(text) | {"month": "-"} == {
        "month": "-",
        "limit_usd": 2.5,
        "reserved_usd": 2.0,
        "billed_usd": 2.0,
        "not_completed_usd": 0.0,
    }


def test_submit_quote_prices_a_folder_against_the_stacks_limits_without_uploading(run: dict[str, Any]) -> None:
    code, text = run["cli"]["quote"]
    assert code == 0, text
    flat = " ".join(text.split())
    assert "WaveSpeed quotes 1.50 USD for 1500 steps on wavespeed-ai/flux-dev-lora-trainer" in flat
    assert "nothing was uploaded" in flat
    assert "MaxJobUsd 2.00 USD: within it" in flat
    assert "MonthlyBudgetUsd 2.50 USD, 0.50 USD left in" in flat
    assert "does not fit: the upload would be REJECTED BUDGET_EXHAUSTED" in flat
    assert len(run["listed"]) == 4  # no fifth job: nothing was uploaded


def test_the_quote_counts_sample_images_against_the_limits(run: dict[str, Any]) -> None:
    # Given two sample prompts beside 1,980 steps (1.98 USD) on a stack whose MaxJobUsd is 2
    code, text = run["cli"]["quote_samples"]
    assert code == 0, text
    flat = " ".join(text.split())
    # Then WaveSpeed's price per image is shown, and the limit says the training fits but not with its samples
    assert "and 2 sample image(s) on wavespeed-ai/flux-dev-lora: 0.025 USD each, 0.050 USD in all" in flat
    assert (
        "MaxJobUsd 2.00 USD: within it for the training, not with its samples (2.03 USD): samples would fail "
        "OVER_BUDGET" in flat
    )
    asked = [body["inputs"] for body in run["pricing"] if body["model_id"] == "wavespeed-ai/flux-dev-lora"]
    assert [(inputs["prompt"], inputs["num_images"]) for inputs in asked] == [("a p3r5on", 1)]


def test_a_lost_post_holds_its_reservation_until_the_reconciler_proves_it_lost_and_the_new_attempt_takes_it(
    run: dict[str, Any],
) -> None:
    lost = run["lost"]
    assert (lost["status"], lost["attempts"], lost["lost_submissions"], lost["quote_usd"]) == ("COMPLETED", 1, 1, 1)
    assert run["lost_posts"] == [0, 200]  # dropped, then the one new submission: never a blind retry
    assert [float(amount) for amount in run["held"]] == [
        1.0
    ]  # while uncertain, the quote stayed reserved: a task might exist
