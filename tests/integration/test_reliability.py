"""Every fault and load scenario of `make reliability`, at the fast scale, on the test stack."""

from __future__ import annotations

import pytest

from loradrop_local.reliability import FAST, SCENARIOS, Harness
from loradrop_local.stack import LocalStack

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario(stack: LocalStack, name: str) -> None:
    outcome = SCENARIOS[name](Harness(stack), FAST)
    assert outcome.problems == []
    assert sum(outcome.end_states.values()) == outcome.uploads
    assert outcome.orphan_uploads == 0
    assert outcome.objects_ok == outcome.end_states.get("COMPLETED", 0)
