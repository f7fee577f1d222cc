"""One local stack for the integration tests: moto's server, the simulator, the real handlers."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loradrop_local.aws.stack import LocalStack, StackOptions
from loradrop_local.reliability.harness import SCENARIO_ENVIRONMENT, SCENARIO_TIMEOUTS
from loradrop_local.simulator.model import RecordedRequest, SimulatorConfig

TERMINAL = {"COMPLETED", "FAILED", "REJECTED"}


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


def posts_for(stack: LocalStack, key: str) -> list[RecordedRequest]:
    """Training submissions the simulator received for this upload (its presigned URL names the key)."""
    assert stack.simulator is not None
    encoded = key.split("/", 1)[1].replace(" ", "%20")
    return [r for r in stack.simulator.submissions() if isinstance(r.body, dict) and encoded in str(r.body.get("data"))]


def events_for(stack: LocalStack, job_id: str, seen: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    events = stack.drain_events()
    if seen is not None:
        seen.extend(events)
        events = seen
    return [e for e in events if e["detail"]["job_id"] == job_id]


def reconcile(stack: LocalStack) -> dict[str, Any]:
    from loradrop_local.aws.events import scheduled_event

    result: dict[str, Any] = stack.invoke("ReconcileJobsFunction", scheduled_event())
    return result


def s3_notification(stack: LocalStack, key: str, etag: str, size: int) -> str:
    """The body S3 sends the intake queue for an upload (as moto delivers it)."""
    return json.dumps(
        {
            "Records": [
                {
                    "eventVersion": "2.1",
                    "eventSource": "aws:s3",
                    "awsRegion": "us-east-1",
                    "eventName": "ObjectCreated:Put",
                    "s3": {
                        "s3SchemaVersion": "1.0",
                        "bucket": {"name": stack.uploads_bucket, "arn": f"arn:aws:s3:::{stack.uploads_bucket}"},
                        "object": {"key": key.replace(" ", "+"), "size": size, "eTag": etag},
                    },
                }
            ]
        }
    )


def log_lines(stack: LocalStack) -> str:
    path: Path | None = stack.options.log_file
    return path.read_text() if path and path.exists() else ""
