"""Throughput by WaveSpeed tier: a burst of uploads on a stack deployed with `WaveSpeedTier=<tier>`, against
a simulator that starts tasks at that tier's rate and answers a POST in WaveSpeed's time, both compressed
by the same factor as the stack's queue delays. It reports task starts per (compressed) minute achieved
against the tier's limit, and still judges every upload as the other scenarios do."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from loradrop_dev.reliability.harness import Harness, reliability_options
from loradrop_local.aws.cloudformation import load_template
from loradrop_local.aws.stack import LocalStack
from loradrop_local.simulator.model import SimulatorConfig

POST_SECONDS = 1.0  # WaveSpeed's answer to a POST, as the benchmark assumes (docs/benchmarks.md)


@dataclass
class TierRun:
    tier: str
    uploads: int
    minute_seconds: float  # one WaveSpeed minute, compressed

    @property
    def compression(self) -> float:
        return self.minute_seconds / 60


# make reliability: Bronze at 1/30 (a 2 s minute). Silver in real time: its 500 starts a minute, each
# POST taking WaveSpeed's second, already need 10 submitters and most of this 2-core machine, so a
# compressed Silver would measure the machine, not loradrop. More uploads than Silver's limit, so a
# minute window can fill.
FULL_RUNS = (TierRun("Bronze", 20, 2.0), TierRun("Silver", 600, 60.0))
FAST_RUNS = (TierRun("Bronze", 6, 2.0), TierRun("Silver", 40, 60.0))  # wiring only: Silver's limit is not met


@dataclass
class TierRow:
    tier: str
    limit: int  # starts per minute
    submitters: int
    uploads: int
    minute_seconds: float
    starts: int = 0
    rate_limited: int = 0  # POSTs answered 429
    mean_per_minute: float = 0.0
    peak_per_minute: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems

    @property
    def share(self) -> float:
        return self.peak_per_minute / self.limit


def tier_settings(tier: str) -> dict[str, Any]:
    """The template's mapping for a tier (what the deployed stack uses)."""
    settings: dict[str, Any] = load_template()["Mappings"]["Tiers"][tier]
    return settings


def run_tier(run: TierRun) -> TierRow:
    settings = tier_settings(run.tier)
    limit = int(settings["StartsPerMinute"])
    row = TierRow(run.tier, limit, int(settings["SubmitConcurrency"]), run.uploads, run.minute_seconds)
    options = reliability_options()
    options.parameters = {"WaveSpeedTier": run.tier}
    options.time_scale = run.compression  # queue delays and back-offs at the same pace as the minute
    options.account_concurrency = row.submitters
    # A POST takes WaveSpeed's time here: the scenarios' 1 s submit timeout would make it uncertain.
    options.extra_environment |= {"SUBMIT_TIMEOUT_SECONDS": str(max(1.0, 10 * POST_SECONDS * run.compression))}
    # Every task ends only after the burst, and ends FAILED (1401): this 2-core machine runs all four
    # functions, moto and the simulator, so copies running beside the submissions would slow them down
    # where in Lambda they would not. The failure still goes the whole webhook path.
    burst_seconds = 10 + 1.2 * run.minute_seconds * run.uploads / limit
    options.simulator = SimulatorConfig(
        starts_per_minute=limit,
        minute_seconds=run.minute_seconds,
        submit_latency=POST_SECONDS * run.compression,
        processing_after=0.01,
        train_seconds=burst_seconds,
        webhook_backoff=0.05,
    )
    started = time.monotonic()
    with LocalStack(options) as stack:
        assert stack.simulator is not None
        if stack.runtimes["SubmitTrainingFunction"].config.concurrency != row.submitters:
            row.problems.append("SubmitTraining does not run the tier's number of submitters")
        stack.simulator.faults.task.extend([(1401, "throughput run: the task ends here")] * run.uploads)
        harness = Harness(stack)
        tracked = harness.upload(f"tier-{run.tier.lower()}", run.uploads)
        harness.wait(tracked, timeout=burst_seconds + 60)
        harness.settle(tracked, timeout=60)  # the reconciler, for any webhook the burst lost
        outcome = harness.outcome(f"{run.tier} burst", "", tracked, expect={"FAILED": run.uploads}, tasks=run.uploads)
        row.problems += outcome.problems
        starts = list(stack.simulator.start_times)
        row.rate_limited = stack.simulator.rate_limited
    row.seconds = round(time.monotonic() - started, 1)
    row.starts = len(starts)
    if len(starts) > 1:
        span = starts[-1] - starts[0]
        row.mean_per_minute = round((len(starts) - 1) / span * run.minute_seconds, 1) if span else 0.0
        windows: dict[int, int] = {}
        for moment in starts:  # the simulator's own fixed minute windows
            window = int(moment // run.minute_seconds)
            windows[window] = windows.get(window, 0) + 1
        row.peak_per_minute = max(windows.values())
    if row.peak_per_minute > limit:
        row.problems.append(f"{row.peak_per_minute} starts in one minute, over the tier's {limit}")
    return row
