"""Reaching a stack's jobs — the local stack or a deployed one — and moving their files: what the
`loradrop` commands and `make demo` share (`view` shows them)."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console

from loradrop.job import Job, job_id_for, s3_location
from loradrop.jobs import JobStore
from loradrop.models import JobStatus
from loradrop_cli.view import console_for, follow, transfer_bar


class CliError(Exception):
    """A problem the user can fix; printed without a traceback."""


class StillRunning(CliError):
    """--wait gave up before the job ended; the job goes on."""


@dataclass
class Target:
    """Where a stack's resources are, and clients to reach them."""

    description: str
    s3: Any
    dynamodb: Any
    uploads_bucket: str
    weights_bucket: str
    table: str
    sqs: Any = None
    intake_queue_url: str | None = None
    store_queue_url: str | None = None
    local: bool = False  # moto's S3 notifications carry no versionId, so uploads are named by ETag
    secrets: Any = None
    # SubmitTraining's environment (its trainer, defaults, limits and WaveSpeed's address), read on first use
    read_submit_environment: Callable[[], dict[str, str]] = field(default=dict, repr=False)

    def job_id(self, key: str, version_id: str | None, etag: str) -> str:
        """The id SubmitTraining gives the job for this upload."""
        return job_id_for(self.uploads_bucket, key, None if self.local else version_id, etag)

    @property
    def jobs(self) -> JobStore:
        return JobStore(self.dynamodb, self.table)

    def submit_environment(self) -> dict[str, str]:
        environment = self.read_submit_environment()
        if "WAVESPEED_SECRET_ID" not in environment:
            raise CliError(f"cannot read SubmitTraining's settings on {self.description}")
        return environment


def local_target(state_dir: Path) -> Target:
    state_file = state_dir / "local.json"
    if not state_file.exists():
        raise CliError(
            f"no local stack is running ({state_file} not found): start one with `loradrop local` in another "
            "terminal, or use --stack NAME for a deployed stack"
        )
    state = json.loads(state_file.read_text())
    credentials = state["credentials"]  # the local stack's admin user (moto enforces IAM)
    session = boto3.session.Session(
        aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
        region_name=state["region"],
    )
    endpoint = state["endpoint"]
    return Target(
        description=f"local stack at {endpoint}",
        s3=session.client("s3", endpoint_url=endpoint, config=Config(signature_version="s3v4")),
        dynamodb=session.client("dynamodb", endpoint_url=endpoint),
        uploads_bucket=state["names"]["UploadsBucket"],
        weights_bucket=state["names"]["WeightsBucket"],
        table=state["names"]["JobsTable"],
        sqs=session.client("sqs", endpoint_url=endpoint),
        intake_queue_url=state["queues"]["IntakeQueue"],
        store_queue_url=state["queues"]["StoreQueue"],
        local=True,
        secrets=session.client("secretsmanager", endpoint_url=endpoint),
        read_submit_environment=lambda: dict(state.get("submit_environment", {})),
    )


def stack_target(name: str, region: str | None) -> Target:
    session = boto3.session.Session(region_name=region)
    try:
        stacks = session.client("cloudformation").describe_stacks(StackName=name)["Stacks"]
    except (ClientError, BotoCoreError) as err:
        raise CliError(f"cannot read stack {name!r}: {err}. Check the name, region and AWS credentials.") from None
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    try:
        return Target(
            description=f"stack {name} ({session.region_name})",
            s3=session.client("s3", config=Config(signature_version="s3v4")),
            dynamodb=session.client("dynamodb"),
            uploads_bucket=outputs["UploadsBucketName"],
            weights_bucket=outputs["WeightsBucketName"],
            table=outputs["JobsTableName"],
            sqs=session.client("sqs"),
            intake_queue_url=outputs.get("IntakeQueueUrl"),
            store_queue_url=outputs.get("StoreQueueUrl"),
            secrets=session.client("secretsmanager"),
            read_submit_environment=lambda: _function_environment(session, name, "SubmitTrainingFunction"),
        )
    except KeyError as missing:
        raise CliError(f"stack {name!r} has no output {missing}: is it a loradrop stack?") from None


def _function_environment(session: boto3.session.Session, stack: str, logical_id: str) -> dict[str, str]:
    """A deployed function's environment variables (names and settings; the key stays in its secret)."""
    try:
        resource = session.client("cloudformation").describe_stack_resource(
            StackName=stack, LogicalResourceId=logical_id
        )
        name = resource["StackResourceDetail"]["PhysicalResourceId"]
        configuration = session.client("lambda").get_function_configuration(FunctionName=name)
    except (ClientError, BotoCoreError) as err:
        raise CliError(f"cannot read {logical_id}'s settings in stack {stack!r}: {err}") from None
    return dict(configuration.get("Environment", {}).get("Variables", {}))


def follow_job(target: Target, job_id: str, timeout: float, out: TextIO) -> Job:
    """Follow a job to its end (a live line on a terminal); StillRunning after `timeout` seconds."""

    def gave_up() -> Exception:
        return StillRunning(f"gave up waiting after {timeout:.0f}s; the job goes on: `loradrop status {job_id}`")

    return follow(lambda: target.jobs.get(job_id), timeout, console_for(out), gave_up)


def upload(target: Target, key: str, body: bytes, metadata: dict[str, str], console: Console) -> str:
    """PUT the training ZIP (multipart when large) with a progress bar; return its job id."""
    try:
        with transfer_bar(console, "uploading", len(body)) as advance:
            target.s3.upload_fileobj(
                io.BytesIO(body), target.uploads_bucket, key, ExtraArgs={"Metadata": metadata}, Callback=advance
            )
        head = target.s3.head_object(Bucket=target.uploads_bucket, Key=key)
    except (ClientError, BotoCoreError) as err:
        raise CliError(f"could not upload to s3://{target.uploads_bucket}/{key}: {err}") from None
    return target.job_id(key, head.get("VersionId"), head["ETag"])


def download_weights(target: Target, job: Job, destination: Path, console: Console) -> str:
    """Stream the weights to `destination` with a progress bar, verifying the SHA-256 recorded on the job."""
    if job.status is not JobStatus.COMPLETED or not job.weights_uri:
        raise CliError(f"job {job.job_id} is {job.status.value}, not COMPLETED: there are no weights to fetch")
    digest = download_verified(
        target, job.weights_uri, destination, sha256=job.weights_sha256, size=job.weights_size, console=console
    )
    console.print(f"saved {destination} ({job.weights_size:,} bytes, sha256 verified)")
    return digest


def download_verified(  # noqa: PLR0913 - what to fetch, where to, what it must be, where to show progress
    target: Target, uri: str, destination: Path, *, sha256: str | None, size: int | None, console: Console
) -> str:
    """Stream `uri` to `destination` (through a `.part` file, with a progress bar); keep it only if its SHA-256 is
    the one recorded."""
    bucket, key = s3_location(uri)
    partial = destination.with_name(destination.name + ".part")
    digest = hashlib.sha256()
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        body = target.s3.get_object(Bucket=bucket, Key=key)["Body"]
        with transfer_bar(console, "downloading", size) as advance, partial.open("wb") as handle:
            for chunk in iter(lambda: body.read(1024 * 1024), b""):
                digest.update(chunk)
                handle.write(chunk)
                advance(len(chunk))
    except (ClientError, BotoCoreError) as err:
        partial.unlink(missing_ok=True)
        raise CliError(f"could not download {uri}: {err}") from None
    if digest.hexdigest() != sha256:
        partial.unlink(missing_ok=True)
        raise CliError(f"checksum mismatch for {uri}: the download was discarded; try again")
    partial.replace(destination)
    return digest.hexdigest()


def download_card(target: Target, job: Job, weights: Path, console: Console) -> list[Path]:
    """The model card beside downloaded weights: NAME.model-card.json and NAME.README.md."""
    if not job.model_card_uri:
        raise CliError(f"job {job.job_id} has no model card (it completed before loradrop wrote them)")
    bucket, key = s3_location(job.model_card_uri)
    written = []
    for source, suffix in ((key, ".model-card.json"), (key.rsplit("/", 1)[0] + "/README.md", ".README.md")):
        destination = weights.with_name(weights.stem + suffix)
        try:
            destination.write_bytes(target.s3.get_object(Bucket=bucket, Key=source)["Body"].read())
        except (ClientError, BotoCoreError) as err:
            raise CliError(f"could not download s3://{bucket}/{source}: {err}") from None
        written.append(destination)
    console.print(f"saved the model card: {', '.join(str(path) for path in written)}")
    return written
