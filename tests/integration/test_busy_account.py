"""The busy, messy account's scenarios of `make reliability`, at the fast scale, on the test stack: a crowded
history, a history without totals, proxies' 404s, odd rows, a backlog, a late retry, an odd header, crashes
right after a job's end is written."""

from __future__ import annotations

import pytest

from loradrop_dev.reliability.busy_account import SCENARIOS
from loradrop_dev.reliability.harness import Harness
from loradrop_dev.reliability.scenarios import FAST
from loradrop_local.aws.stack import LocalStack
from tests.integration.test_reliability import assert_held

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario(stack: LocalStack, name: str) -> None:
    assert_held(SCENARIOS[name](Harness(stack), FAST))
