"""`make reliability`: every scenario (and the hostile inputs) on one local stack; writes docs/reliability.md."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from loradrop_dev.reliability.harness import Harness, reliability_options
from loradrop_dev.reliability.hostile import HostileRow, run_hostile
from loradrop_dev.reliability.report import REPORT, write_report
from loradrop_dev.reliability.scenarios import FAST, FULL, SCENARIOS
from loradrop_dev.reliability.tiers import FAST_RUNS, FULL_RUNS, run_tier
from loradrop_local.aws.cloudformation import TEMPLATE_PATH
from loradrop_local.aws.stack import LocalStack


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loradrop_dev.reliability", description=__doc__)
    parser.add_argument("--scale", choices=["fast", "full"], default="full")
    parser.add_argument("--only", nargs="*", choices=list(SCENARIOS), help="run only these scenarios")
    parser.add_argument("--output", type=Path, default=REPORT)
    parser.add_argument("--template", type=Path, default=TEMPLATE_PATH, help="another template (e.g. a changed copy)")
    parser.add_argument("--skip-hostile", action="store_true", help="skip the hostile-input section")
    parser.add_argument(
        "--skip-tiers", action="store_true", help="skip the throughput runs by WaveSpeed tier (minutes at full scale)"
    )
    args = parser.parse_args(argv)
    scale = FULL if args.scale == "full" else FAST
    started = time.monotonic()
    outcomes = []
    hostile: list[HostileRow] = []
    options = reliability_options(full=args.scale == "full")
    options.template = args.template
    with LocalStack(options) as stack:
        harness = Harness(stack)
        for name in args.only or SCENARIOS:
            print(f"running {name} ...", flush=True)
            outcome = SCENARIOS[name](harness, scale)
            harness.sim.faults.clear()
            print(f"  {'pass' if outcome.passed else 'FAIL'}: {outcome.end_states} {outcome.problems}", flush=True)
            outcomes.append(outcome)
        if not args.skip_hostile:
            print("running hostile input ...", flush=True)
            hostile = run_hostile(harness, scale["fuzz"])
            for row in hostile:
                print(f"  {'pass' if row.passed else 'FAIL'}: {row}", flush=True)
    tiers = []
    if not args.skip_tiers and not args.only:
        for run in FULL_RUNS if args.scale == "full" else FAST_RUNS:  # each on a stack of its own, one after another
            print(f"running the {run.tier} tier burst ({run.uploads} uploads) ...", flush=True)
            tier = run_tier(run)
            print(f"  {'pass' if tier.passed else 'FAIL'}: {tier}", flush=True)
            tiers.append(tier)
    deadline = float(options.extra_environment["SETTLE_DEADLINE_SECONDS"])
    write_report(outcomes, hostile, tiers, args.scale, time.monotonic() - started, args.output, deadline)
    print(f"wrote {args.output}")
    passed = [o.passed for o in outcomes] + [r.passed for r in hostile] + [t.passed for t in tiers]
    return 0 if all(passed) else 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
