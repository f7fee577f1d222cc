"""The Docker tier: what `sam build` made, run by SAM's own emulators in Lambda's arm64 runtime, against the
local stack. Without Docker (or the image, or the build) it is skipped with one line saying what it checks and
how to get it; in CI (LORADROP_REQUIRE_DOCKER=1) a skip is a failure."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from loradrop_local.aws.stack import LocalStack, StackOptions
from loradrop_local.sam.emulators import SamEmulators, sam_problem, stack_in_sam
from loradrop_local.simulator.model import SimulatorConfig

WHAT = "the built artifacts and events/ in Lambda's arm64 runtime through `sam local`"
HOW = "`local/setup-docker.sh` (as root: Docker, arm64 emulation, the image), then `make test-docker`"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    problem = sam_problem()
    if problem is None:
        return
    message = f"Docker tier skipped ({problem}): it checks {WHAT}; to run it: {HOW}"
    if os.environ.get("LORADROP_REQUIRE_DOCKER") == "1":  # CI: the tier must run, never skip quietly
        raise pytest.UsageError(f"LORADROP_REQUIRE_DOCKER=1, yet {message}")
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:  # the hook sees every test of the session: skip only this tier's
            item.add_marker(pytest.mark.skip(reason=message))


@pytest.fixture(scope="session")
def sam_stack() -> Iterator[tuple[LocalStack, SamEmulators]]:
    """A local stack whose functions SAM's emulators run, from what `sam build` made."""
    options = StackOptions(reconcile_every=60.0, simulator=SimulatorConfig(output_size=3 * 1024 * 1024 + 7))
    with tempfile.TemporaryDirectory() as state, stack_in_sam(options, Path(state)) as (stack, emulators):
        # SAM builds its image (the layer on the base) on first use: once, here, not racing a test
        stack.invoke("ReconcileJobsFunction", {"source": "aws.scheduler", "detail-type": "Scheduled Event"})
        yield stack, emulators
