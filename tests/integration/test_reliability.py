"""Every fault and load scenario of `make reliability` but the busy account's (test_busy_account.py), at the
fast scale, on the test stack."""

from __future__ import annotations

import pytest

from loradrop_dev.reliability import busy_account
from loradrop_dev.reliability.harness import Harness, Outcome
from loradrop_dev.reliability.hostile import run_hostile
from loradrop_dev.reliability.scenarios import FAST, SCENARIOS
from loradrop_local.aws.stack import LocalStack

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("name", [name for name in SCENARIOS if name not in busy_account.SCENARIOS])
def test_scenario(stack: LocalStack, name: str) -> None:
    assert_held(SCENARIOS[name](Harness(stack), FAST))


def assert_held(outcome: Outcome) -> None:
    """What every scenario promises: each upload ended, in the states expected, each paid task counted (a sample
    image's too), each weights file verified, each end published as an event, nothing left behind."""
    assert outcome.problems == []
    assert sum(outcome.end_states.values()) == outcome.uploads
    assert outcome.tasks == outcome.attempts
    assert outcome.sample_tasks == outcome.sample_attempts
    assert outcome.end_events >= outcome.uploads
    assert outcome.orphan_uploads == 0
    assert outcome.objects_ok == outcome.end_states.get("COMPLETED", 0)


def test_hostile_input_gets_nothing_through(stack: LocalStack) -> None:
    rows = run_hostile(Harness(stack), FAST["fuzz"])
    assert {row.kind for row in rows} == {
        "broken or malicious ZIPs",
        "forged or malformed webhooks",
        "random webhook bodies and header shapes",
        "weights URLs pointing inside (SSRF)",
    }
    for row in rows:
        assert row.tried >= 10, row
        assert (row.accepted, row.changed_or_outbound, row.server_errors) == (0, 0, 0), row
