"""The local stack behaves like Lambda and IAM: a process per worker, the function's Timeout enforced,
cold starts in the logs, and each function held to its own role's policies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from loradrop_local.aws.cloudformation import load_template
from loradrop_local.aws.events import http_api_event
from loradrop_local.aws.lambda_runtime import FunctionError
from loradrop_local.aws.moto_front import Fault
from loradrop_local.aws.stack import LocalStack
from loradrop_local.dataset import training_zip
from tests.integration.helpers import TERMINAL, log_lines
from tests.integration.test_webhook_side import signed, submitted_job, task_body

pytestmark = pytest.mark.integration


def role_of(stack: LocalStack, function: str) -> dict[str, str]:
    environment = stack.runtimes[function].config.environment
    return {
        k: v for k, v in environment.items() if k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
    }


def test_each_function_runs_in_processes_of_its_own_with_cold_starts_logged(stack: LocalStack, key: str) -> None:
    stack.wait_for(stack.upload(key, training_zip()), TERMINAL)
    logs = log_lines(stack)
    pids: dict[str, set[str]] = {}
    for line in logs.splitlines():
        if line.startswith("INIT_START"):
            function = line.split("Function: ", 1)[1].split()[0]
            pids.setdefault(function.rsplit("-", 1)[1], set()).add(line.rsplit("Pid: ", 1)[1])
    assert {"SubmitTrainingFunction", "ReceiveWebhookFunction", "StoreWeightsFunction"} <= set(pids)
    # No two functions share a process, and the test process runs none of them
    all_pids = [pid for group in pids.values() for pid in group]
    assert len(all_pids) == len(set(all_pids))
    assert str(os.getpid()) not in all_pids
    assert "Init Duration:" in logs  # the first invocation of a worker reports its cold start


def test_an_invocation_past_its_timeout_is_ended_and_the_worker_replaced(stack: LocalStack, key: str) -> None:
    assert stack.simulator is not None
    job_id, task = submitted_job(stack, key)
    runtime = stack.runtimes["ReceiveWebhookFunction"]
    unsigned = http_api_event("POST", "/webhooks/wavespeed", {}, b"{}", "203.0.113.9")
    assert stack.invoke("ReceiveWebhookFunction", unsigned)["statusCode"] == 401  # a warm worker
    warm = {worker.process.pid: worker for worker in runtime._idle}
    # Given DynamoDB answering the job's lookup in 3 s (the handler bounds its WaveSpeed calls, not AWS's), and a
    # 1 s timeout
    body = task_body(stack, task)
    event = http_api_event("POST", "/webhooks/wavespeed", signed(stack, body, "slow-1"), body, "203.0.113.9")
    slow = Fault(lambda r: r.service == "dynamodb" and r.operation == "Query" and bool(r.caller), "slow:3")
    with stack.aws_requests.injected(slow), pytest.raises(FunctionError) as ended:
        stack.invoke("ReceiveWebhookFunction", event, timeout=1)
    # Then Lambda's timeout error, and the worker that ran it is gone for good (never reused)
    assert ended.value.error_type == "Sandbox.Timedout"
    (timed_out,) = set(warm) - {worker.process.pid for worker in runtime._idle}
    assert warm[timed_out].process.poll() is not None
    answer = stack.invoke("ReceiveWebhookFunction", event)
    assert answer["statusCode"] == 200
    assert timed_out not in {worker.process.pid for worker in runtime._idle}
    assert stack.wait_for(job_id, TERMINAL)["status"] == "COMPLETED"


def test_a_webhook_answers_503_in_time_when_wavespeed_is_slower_than_its_invocation(
    stack: LocalStack, key: str
) -> None:
    assert stack.simulator is not None
    job_id, task = submitted_job(stack, key)
    # Given WaveSpeed answering the confirming GET in 5 s, and an invocation with 3 s left
    stack.simulator.faults.result.append("slow:5")
    body = task_body(stack, task)
    event = http_api_event("POST", "/webhooks/wavespeed", signed(stack, body, "slow-2"), body, "203.0.113.9")
    answer = stack.invoke("ReceiveWebhookFunction", event, timeout=3)
    # Then it answers 503 (WaveSpeed delivers again) instead of being cut off, and the next delivery is handled
    assert answer["statusCode"] == 503
    assert stack.invoke("ReceiveWebhookFunction", event)["statusCode"] == 200
    assert stack.wait_for(job_id, TERMINAL)["status"] == "COMPLETED"


@pytest.mark.parametrize(
    ("function", "call"),
    [
        ("ReceiveWebhookFunction", lambda s, c: c("s3").put_object(Bucket=s.weights_bucket, Key="loras/x", Body=b"x")),
        ("StoreWeightsFunction", lambda s, c: c("s3").put_object(Bucket=s.weights_bucket, Key="other/x", Body=b"x")),
        ("StoreWeightsFunction", lambda s, c: c("s3").get_object(Bucket=s.uploads_bucket, Key="uploads/x.zip")),
        ("ReceiveWebhookFunction", lambda s, c: c("dynamodb").scan(TableName=s.table_name)),
        (
            "SubmitTrainingFunction",
            lambda s, c: c("sqs").send_message(QueueUrl=s.queue_urls["StoreQueue"], MessageBody="{}"),
        ),
        (
            "SubmitTrainingFunction",
            lambda s, c: c("events").put_events(Entries=[{"Source": "x", "DetailType": "x", "Detail": "{}"}]),
        ),
    ],
    ids=[
        "webhook-writes-weights",
        "store-writes-outside-loras",
        "store-reads-uploads",
        "webhook-scans-jobs",
        "submit-sends-to-store-queue",
        "submit-publishes-to-default-bus",
    ],
)
def test_a_function_role_is_held_to_its_policies(
    stack: LocalStack, function: str, call: Callable[[LocalStack, Callable[[str], Any]], Any]
) -> None:
    credentials = role_of(stack, function)

    def client(service: str) -> Any:
        return stack.client(service, credentials)

    with pytest.raises(ClientError) as denied:
        call(stack, client)
    assert denied.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_removing_a_needed_statement_fails_a_named_scenario_with_access_denied(tmp_path: Path) -> None:
    # Given a copy of the template without StoreWeights' permission to write the weights
    template = load_template()
    policy = template["Resources"]["StoreWeightsFunction"]["Properties"]["Policies"][0]
    policy["Statement"] = [s for s in policy["Statement"] if s["Sid"] != "WriteWeights"]
    copy = tmp_path / "template.json"
    copy.write_text(json.dumps(template))
    # When the task_endings scenario runs on a stack built from it (its own process: its own moto)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "loradrop_dev.reliability",
            "--scale",
            "fast",
            "--only",
            "task_endings",
            "--skip-hostile",
            "--template",
            str(copy),
            "--output",
            str(tmp_path / "report.md"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    # Then it fails, and the job that should have completed says why: S3 denied the write
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL" in result.stdout
    assert "AccessDenied" in result.stdout
    assert "PutObject" in result.stdout
