"""What the integration tests ask of the local stack: the simulator's requests for an upload, the
events of a job, a reconciler run, the handlers' log lines."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from loradrop_local.aws.events import scheduled_event
from loradrop_local.aws.stack import LocalStack
from loradrop_local.simulator.model import RecordedRequest

TERMINAL = {"COMPLETED", "FAILED", "REJECTED"}


def posts_for(stack: LocalStack, key: str) -> list[RecordedRequest]:
    """Training submissions the simulator received for this upload (its presigned URL names the key)."""
    assert stack.simulator is not None
    encoded = key.split("/", 1)[1].replace(" ", "%20")
    return [r for r in stack.simulator.submissions() if isinstance(r.body, dict) and encoded in str(r.body.get("data"))]


def events_for(
    stack: LocalStack, job_id: str, seen: list[dict[str, Any]] | None = None, timeout: float = 5.0
) -> list[dict[str, Any]]:
    """The job's events so far, waiting up to `timeout` for its first: a job is ended (written) before
    its event is published, so a test that saw the end may ask a moment too soon. `seen` keeps events
    drained for other jobs."""
    seen = [] if seen is None else seen
    deadline = time.monotonic() + timeout
    while True:
        seen.extend(stack.drain_events())
        mine = [e for e in seen if e["detail"]["job_id"] == job_id]
        if mine or time.monotonic() > deadline:
            return mine
        time.sleep(0.05)


def reconcile(stack: LocalStack) -> dict[str, Any]:
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
