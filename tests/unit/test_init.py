"""What each handler's import leaves behind: the collector back on, and the objects the imports made frozen
(no collection ran while they were made, and none will scan them again)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from loradrop_local.aws.cloudformation import PROJECT_ROOT

# Each collection that starts records which of the heavy dependencies were loaded by then: none may be
# (compiling the handler module itself may trigger one, before its first line runs).
PROBE = """
import gc, json, sys
HEAVY = {{"aws_lambda_powertools", "boto3", "botocore", "httpx", "pydantic"}}
loaded = []
gc.callbacks.append(lambda phase, info: phase == "start" and loaded.extend(HEAVY & set(sys.modules)))
import {module}.app
print(json.dumps({{"enabled": gc.isenabled(), "frozen": gc.get_freeze_count(), "loaded": sorted(loaded)}}))
"""


@pytest.mark.parametrize(
    "module", ["submit_training", "receive_webhook", "store_weights", "reconcile_jobs", "publish_events"]
)
def test_no_collection_runs_while_a_handler_imports_its_dependencies_and_the_collector_is_on_after(module: str) -> None:
    run = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module)],
        env=os.environ | {"PYTHONPATH": str(PROJECT_ROOT / "functions")},
        capture_output=True,
        text=True,
        check=True,
    )
    state = json.loads(run.stdout)
    assert state["loaded"] == []
    assert state["enabled"] is True
    assert state["frozen"] > 20_000  # boto3's, pydantic's and loradrop's modules, classes and functions
