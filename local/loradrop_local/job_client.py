"""Reaching a stack's jobs — the local stack or a deployed one — and showing them: what the `loradrop`
commands and `make demo` share."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from loradrop.jobs import Job, JobStore, job_id_for
from loradrop.models import TERMINAL_STATUSES, JobStatus


class CliError(Exception):
    """A problem the user can fix; printed without a traceback."""


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

    def job_id(self, key: str, version_id: str | None, etag: str) -> str:
        """The id SubmitTraining gives the job for this upload."""
        return job_id_for(self.uploads_bucket, key, None if self.local else version_id, etag)

    @property
    def jobs(self) -> JobStore:
        return JobStore(self.dynamodb, self.table)


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
        )
    except KeyError as missing:
        raise CliError(f"stack {name!r} has no output {missing}: is it a loradrop stack?") from None


# ----- presentation -----
def _elapsed(seconds: float) -> str:
    return f"{int(seconds // 60):02d}:{int(seconds % 60):02d}"


_STATUS_WORDS = {
    "RECEIVED": "received, waiting to be submitted",
    "SUBMITTING": "submitting to WaveSpeed",
    "SUBMITTED": "training on WaveSpeed",
    "TRAINING": "training on WaveSpeed",
    "STORING": "copying the weights into S3",
    "COMPLETED": "completed",
    "FAILED": "failed",
    "REJECTED": "rejected",
}


def follow(target: Target, candidates: Sequence[str], timeout: float, out: TextIO) -> Job:
    """Poll until the job reaches a final state, showing state and elapsed time."""
    started = time.monotonic()
    tty = out.isatty()
    last = ""
    job: Job | None = None
    while True:
        elapsed = time.monotonic() - started
        for job_id in candidates:
            job = target.jobs.get(job_id)
            if job is not None:
                candidates = [job_id]
                break
        status = job.status.value if job else "WAITING"
        detail = _STATUS_WORDS.get(status, "waiting for S3's notification")
        if job and job.prediction_id and status in ("SUBMITTED", "TRAINING"):
            detail += f" (task {job.prediction_id[:12]})"
        line = f"[{_elapsed(elapsed)}] {status:<10} {detail}"
        if tty:
            out.write(f"\r{line:<90}")
        elif status != last:
            out.write(line + "\n")
        out.flush()
        last = status
        if job is not None and job.status in TERMINAL_STATUSES:
            if tty:
                out.write("\n")
            return job
        if elapsed > timeout:
            if tty:
                out.write("\n")
            raise CliError(f"gave up waiting after {timeout:.0f}s; the job goes on: `loradrop status {candidates[0]}`")
        time.sleep(0.2 if elapsed < 10 else 2.0)


def describe(job: Job, out: TextIO) -> None:
    data = job.public()
    out.write(f"job       {job.job_id}\n")
    out.write(f"status    {job.status.value}\n")
    out.write(f"source    s3://{job.source_bucket}/{job.source_key}\n")
    if job.params:
        params = data["params"]
        out.write("params    " + ", ".join(f"{k}={v}" for k, v in params.items()) + "\n")
    if job.dataset:
        out.write(f"dataset   {dataset_summary(data['dataset'])}\n")
    elif job.archive:  # a job from before the dataset survey
        out.write(f"archive   {job.archive['images']} images, {job.archive['captions']} captions\n")
    if job.archive and "bytes_read" in job.archive:
        out.write(f"read      {reading_summary(data['archive'], job.source_size)}\n")
    if job.prediction_id:
        out.write(f"task      {job.prediction_id} (attempts: {job.attempts})\n")
    for warning in job.warnings:
        out.write(f"warning   {warning}\n")
    if job.error:
        out.write(f"error     [{job.error_code}] {job.error}\n")
    if job.weights_uri:
        out.write(f"weights   {job.weights_uri}\n")
        out.write(f"size      {job.weights_size:,} bytes\n")
        out.write(f"sha256    {job.weights_sha256}\n")
    out.write("history\n")
    for entry in job.history:
        note = f"  {entry['note']}" if entry.get("note") else ""
        task = f"  task {entry['prediction_id']}" if entry.get("prediction_id") else ""
        out.write(f"  {entry['at']}  {entry['status']:<10}{task}{note}".rstrip() + "\n")


def dataset_summary(dataset: dict[str, Any]) -> str:
    """The survey in one line: counts, formats, sizes, captions."""
    parts = [f"{dataset['images']} images: {dataset['distinct']} distinct, {dataset['usable']} usable"]
    parts.append(", ".join(f"{kind} {count}" for kind, count in dataset.get("formats", {}).items()))
    if "smallest" in dataset:
        sizes = (
            dataset["smallest"]
            if dataset["smallest"] == dataset["largest"]
            else (f"{dataset['smallest']} to {dataset['largest']}")
        )
        parts.append(f"{sizes}, {dataset['megapixels']:g} MP in all")
    parts.append(f"{dataset['captions']} of {dataset['images']} captioned")
    if dataset.get("not_surveyed"):
        parts.append(f"{dataset['not_surveyed']} not surveyed")
    return " · ".join(part for part in parts if part)


def reading_summary(archive: dict[str, Any], size: int | None) -> str:
    """What inspecting the upload cost, against its size."""
    whole = f" of {size:,}" if size else ""
    return (
        f"{archive['bytes_read']:,}{whole} bytes in {archive['range_reads']} range GET(s), "
        f"at most {archive.get('survey_bytes_per_image_max', 0):,} per image"
    )


def download_weights(target: Target, job: Job, destination: Path, out: TextIO) -> str:
    """Stream the weights to `destination`, verifying the SHA-256 recorded on the job."""
    if job.status is not JobStatus.COMPLETED or not job.weights_uri:
        raise CliError(f"job {job.job_id} is {job.status.value}, not COMPLETED: there are no weights to fetch")
    bucket, key = job.weights_uri.removeprefix("s3://").split("/", 1)
    partial = destination.with_name(destination.name + ".part")
    digest = hashlib.sha256()
    try:
        body = target.s3.get_object(Bucket=bucket, Key=key)["Body"]
        with partial.open("wb") as handle:
            for chunk in iter(lambda: body.read(1024 * 1024), b""):
                digest.update(chunk)
                handle.write(chunk)
    except (ClientError, BotoCoreError) as err:
        partial.unlink(missing_ok=True)
        raise CliError(f"could not download {job.weights_uri}: {err}") from None
    if digest.hexdigest() != job.weights_sha256:
        partial.unlink(missing_ok=True)
        raise CliError(f"checksum mismatch for {job.weights_uri}: the download was discarded; try again")
    partial.replace(destination)
    out.write(f"saved {destination} ({job.weights_size:,} bytes, sha256 verified)\n")
    return digest.hexdigest()


def download_card(target: Target, job: Job, weights: Path, out: TextIO) -> list[Path]:
    """The model card beside downloaded weights: NAME.model-card.json and NAME.README.md."""
    if not job.model_card_uri:
        raise CliError(f"job {job.job_id} has no model card (it completed before loradrop wrote them)")
    bucket, key = job.model_card_uri.removeprefix("s3://").split("/", 1)
    written = []
    for source, suffix in ((key, ".model-card.json"), (key.rsplit("/", 1)[0] + "/README.md", ".README.md")):
        destination = weights.with_name(weights.stem + suffix)
        try:
            destination.write_bytes(target.s3.get_object(Bucket=bucket, Key=source)["Body"].read())
        except (ClientError, BotoCoreError) as err:
            raise CliError(f"could not download s3://{bucket}/{source}: {err}") from None
        written.append(destination)
    out.write(f"saved the model card: {', '.join(str(path) for path in written)}\n")
    return written
