"""The fault and load scenarios `make reliability` runs, by name and in order, and the two scales they run
at: "fast" in the tests, "full" in `make reliability`. Each injects something, then checks what a user
would see; they live by theme in `load`, `wavespeed_faults`, `recovery` and `busy_account`."""

from __future__ import annotations

from collections.abc import Callable

from loradrop_dev.reliability import busy_account
from loradrop_dev.reliability.harness import Harness, Outcome, Scale
from loradrop_dev.reliability.load import burst, duplicate_messages, webhook_flood
from loradrop_dev.reliability.recovery import crashes, reconciler_isolation, store_recovery
from loradrop_dev.reliability.wavespeed_faults import (
    output_faults,
    result_faults,
    sample_faults,
    submit_faults,
    task_endings,
    task_failures,
    uncertain_settling,
    webhook_faults,
)

FAST: Scale = {
    "burst": 20,
    "burst_rate": 2,  # below what two submitters send even on a loaded machine: the burst meets 429s
    "webhook_jobs": 10,
    "webhook_copies": 10,
    "each": 2,
    "fuzz": 200,
    "crowd": 300,
    "backlog": 205,
    "sample_jobs": 4,  # one per sample fault
}
FULL: Scale = {
    "burst": 200,
    "burst_rate": 8,
    "webhook_jobs": 50,
    "webhook_copies": 20,
    "each": 5,
    "fuzz": 2000,
    "crowd": 3000,
    "backlog": 450,
    "sample_jobs": 12,
}

SCENARIOS: dict[str, Callable[[Harness, Scale], Outcome]] = {
    "burst": burst,
    "webhook_flood": webhook_flood,
    "duplicate_messages": duplicate_messages,
    "submit_faults": submit_faults,
    "uncertain_settling": uncertain_settling,
    "result_faults": result_faults,
    "task_failures": task_failures,
    "output_faults": output_faults,
    "webhook_faults": webhook_faults,
    "crashes": crashes,
    "task_endings": task_endings,
    "reconciler_isolation": reconciler_isolation,
    "store_recovery": store_recovery,
    "sample_faults": sample_faults,
    **busy_account.SCENARIOS,  # a busy, messy account
}
