"""`sam local` for real: the artifacts `sam build` made, in Lambda's arm64 runtime (the stand-in image), run by
SAM's own emulators against the local stack."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from loradrop_local.aws.stack import LocalStack
from loradrop_local.dataset import training_zip
from loradrop_local.sam.emulators import BUILD, SamEmulators
from loradrop_local.sam.image import IMAGE
from tests.samples import FUNCTION_OF, sample

TERMINAL = {"COMPLETED", "FAILED", "REJECTED"}
HANDLERS = {
    "SubmitTrainingFunction": ("submit_training", "submitter"),
    "ReceiveWebhookFunction": ("receive_webhook", "tracker"),
    "StoreWeightsFunction": ("store_weights", "storer"),
    "ReconcileJobsFunction": ("reconcile_jobs", "reconciler"),
    "PublishEventsFunction": ("publish_events", "event_publisher"),
}
PROBE = """
import importlib, json, os, platform, sys
found = {"machine": platform.machine(), "python": list(sys.version_info[:3])}
for module, factory in %s:
    handler = importlib.import_module(module + ".app")
    found[module] = {"bytecode": os.path.exists(handler.__spec__.cached or ""), "handler": callable(handler.handler)}
    from loradrop import services
    getattr(services, factory)()
from loradrop import tls
found["hashed_roots"] = sorted(os.listdir("/opt/python/certifi/hashed"))[:1] != []
found["tls_roots_loaded_before_a_handshake"] = len(tls.tls_context().get_ca_certs())
print(json.dumps(found))
"""


def tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return digest.hexdigest()


def test_the_built_artifacts_import_and_build_their_clients_in_lambdas_arm64_runtime() -> None:
    # Given what `sam build` made: each function's code (the same for all five) and the dependencies layer
    digests = {tree_digest(BUILD / function) for function in HANDLERS}
    assert len(digests) == 1
    # When every handler is imported, and its services built, in the arm64 image (code and layer as Lambda
    # mounts them: read-only, at /var/task and /opt)
    environment = {
        "JOBS_TABLE": "t", "EVENT_BUS_NAME": "b", "WAVESPEED_SECRET_ID": "s", "WEBHOOK_URL": "https://h/w",
        "STORE_QUEUE_URL": "https://q/s", "INTAKE_QUEUE_URL": "https://q/i", "WEIGHTS_BUCKET": "w",
        "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
        "PYTHONPATH": "/var/task:/opt/python", "PYTHONDONTWRITEBYTECODE": "1",
    }  # fmt: skip
    run = subprocess.run(
        ["docker", "run", "--rm", "--platform", "linux/arm64", "--entrypoint", "/usr/bin/python3"]
        + [
            f"--volume={BUILD / 'SubmitTrainingFunction'}:/var/task:ro",
            f"--volume={BUILD / 'DependenciesLayer'}:/opt:ro",
        ]
        + [arg for name, value in environment.items() for arg in ("--env", f"{name}={value}")]
        + [IMAGE, "-c", PROBE % list(HANDLERS.values())],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    found = json.loads(run.stdout.strip().splitlines()[-1])
    # Then they run on arm64 Python 3.13 from their compiled bytecode, the layer's arm64 wheels load, and the
    # TLS context reads no certificate root until a handshake needs one (the layer's hashed directory)
    assert found["machine"] == "aarch64"
    assert found["python"][:2] == [3, 13]
    for module, _ in HANDLERS.values():
        assert found[module] == {"bytecode": True, "handler": True}, module
    assert found["hashed_roots"] is True
    assert found["tls_roots_loaded_before_a_handshake"] == 0


def _expect(name: str, answer: dict[str, Any], job_id: str) -> None:
    """What events/README.md promises each sample's run."""
    if name == "s3_put.json":
        ((job,),) = [answer["jobs"]]
        assert job["job_id"] == job_id
    elif name == "webhook_completed.json":
        assert answer["statusCode"] == 404  # signed with the stack's secret, for a task no job of ours has
        assert json.loads(answer["body"])["message"] == "no job has this task id (yet)"
    elif name == "schedule.json":
        assert isinstance(answer["summary"], dict)
    else:
        assert answer == {"batchItemFailures": []}


@pytest.mark.parametrize("name", sorted(FUNCTION_OF))
def test_every_sample_event_runs_through_sam_local_invoke(
    sam_stack: tuple[LocalStack, SamEmulators], name: str
) -> None:
    stack, emulators = sam_stack
    key, job_id = None, "portraits-of-ana-5d3f0c1b2a49"  # the samples' own job: not in this stack's table
    if name in ("s3_put.json", "sqs_upload.json"):  # an upload of this stack's for the notification to name
        key = f"uploads/sam-{name.split('.', maxsplit=1)[0]}-{time.monotonic_ns()}.zip"
        job_id = stack.upload(key, training_zip())
        # its own notification runs the pipeline first (through start-lambda): the sample then meets a claimed
        # job, as a repeated notification would, and answers without a second task
        stack.wait_for(job_id, TERMINAL, timeout=600)
    answer = emulators.invoke(FUNCTION_OF[name], sample(stack, name, key=key, job_id=job_id))
    _expect(name, answer, job_id)
    if name.startswith("stream_"):  # the sample's end (or its samples) reached the bus
        deadline = time.monotonic() + 60
        published: list[dict[str, Any]] = []
        while not published and time.monotonic() < deadline:
            published = [e for e in stack.drain_events() if e["detail"]["job_id"] == "portraits-of-ana-5d3f0c1b2a49"]
            time.sleep(0.5)
        expected = "Job Completed" if name == "stream_job_ended.json" else "Samples Ready"
        assert [e["detail-type"] for e in published] == [expected]


def test_the_pipeline_runs_in_sams_emulators(sam_stack: tuple[LocalStack, SamEmulators]) -> None:
    stack, emulators = sam_stack
    assert stack.simulator is not None
    # Given an upload, with every handler run by `sam local start-lambda`/`start-api` from the build
    body = training_zip(images=6)
    job_id = stack.upload(f"uploads/sam-pipeline-{time.monotonic_ns()}.zip", body)
    # Then the job ends COMPLETED, its weights in S3 with the SHA-256 WaveSpeed's output has
    job = stack.wait_for(job_id, TERMINAL, timeout=600)
    assert job["status"] == "COMPLETED", job.get("error")
    bucket, key = job["weights_uri"].removeprefix("s3://").split("/", 1)
    stored = stack.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    assert (
        hashlib.sha256(stored).hexdigest()
        == job["weights_sha256"]
        == stack.simulator.expected_output(job["prediction_id"])[1]
    )
    # and its end was published (the table's stream, through start-lambda)
    deadline = time.monotonic() + 300
    ended: list[dict[str, Any]] = []
    while not ended and time.monotonic() < deadline:
        ended = [e for e in stack.drain_events() if e["detail"]["job_id"] == job_id]
        time.sleep(0.5)
    assert [e["detail-type"] for e in ended] == ["Job Completed"]
    # and the webhook came through start-api's route, the copy and the event through start-lambda
    posted = stack.simulator.tasks[job["prediction_id"]].webhook_answers
    assert 200 in posted
    ran = emulators.handlers_run()
    for handler in ("submit_training", "receive_webhook", "store_weights", "publish_events"):
        assert ran[f"{handler}.app.handler"] >= 1, ran
    summary = stack.invoke("ReconcileJobsFunction", {"source": "aws.scheduler", "detail-type": "Scheduled Event"})
    assert isinstance(summary["summary"], dict)
