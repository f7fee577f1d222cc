"""One local stack for the integration tests: moto's server, the simulator, the real handlers."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from loradrop_dev.reliability.harness import SCENARIO_ENVIRONMENT, SCENARIO_TIMEOUTS
from loradrop_local.aws.stack import LocalStack, StackOptions
from loradrop_local.simulator.model import SimulatorConfig


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    log_file = tmp_path_factory.mktemp("logs") / "handlers.jsonl"
    options = StackOptions(
        run_reconciler=False,  # tests run it explicitly, so nothing moves behind their back
        reconcile_after=0,
        simulator=SimulatorConfig(output_size=3 * 1024 * 1024 + 123, webhook_backoff=0.05),
        extra_environment=SCENARIO_ENVIRONMENT | {"MAX_ARCHIVE_BYTES": str(64 * 1024 * 1024)},
        function_timeouts=dict(SCENARIO_TIMEOUTS),
        log_file=log_file,
    )
    with LocalStack(options) as running:
        yield running


@pytest.fixture(autouse=True)
def _clean_faults(stack: LocalStack) -> Iterator[None]:
    assert stack.simulator is not None
    stack.simulator.faults.clear()
    yield
    stack.simulator.faults.clear()


@pytest.fixture
def key(request: pytest.FixtureRequest) -> str:
    name = request.node.name.replace("[", "-").replace("]", "")[:40]
    return f"uploads/{name}-{uuid.uuid4().hex[:6]}.zip"
