"""`make bench`: loradrop's speed and memory, each figure beside its obvious alternative, one run.

Writes docs/benchmarks.md. moto's server and the WaveSpeed simulator run in their own processes
so that memory figures are the storing process's alone. Nothing here asserts: it measures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

ROOT = Path(__file__).resolve().parents[2]
REPORT = ROOT / "docs" / "benchmarks.md"
RAW = ROOT / "docs" / "benchmarks.json"  # the measurements behind the report
MIB = 1024 * 1024
GIB = 1024 * MIB
PYTHON = sys.executable


# ----- helpers -----
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


@contextmanager
def moto_process() -> Iterator[str]:
    port = _free_port()
    process = subprocess.Popen(
        [PYTHON, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextmanager
def simulator_process(tasks: dict[str, int]) -> Iterator[str]:
    args = [PYTHON, "-m", "loradrop_local.simulator"]
    for task_id, size in tasks.items():
        args += ["--completed-task", f"{task_id}:{size}"]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert process.stdout is not None
        yield process.stdout.readline().strip()
    finally:
        process.terminate()
        process.wait(timeout=10)


def s3_client(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        config=Config(signature_version="s3v4"),
    )


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _size(n: int) -> str:
    return f"{n / GIB:.3g} GiB" if n >= GIB - MIB else f"{n / MIB:.3g} MiB"


# ----- 1. ZIP inspection -----
ENTRIES = 40


def write_stored_zip(path: Path, total: int) -> None:
    """A stored (uncompressed) ZIP of ENTRIES zero-filled images, `total` bytes or so, written sparsely."""
    entry_size = max(1, (total - ENTRIES * 200) // ENTRIES)
    zeros = bytes(min(entry_size, 64 * MIB))
    crc = 0
    remaining = entry_size
    while remaining:
        piece = zeros[: min(remaining, len(zeros))]
        crc = zlib.crc32(piece, crc)
        remaining -= len(piece)
    zip64 = entry_size >= 0xFFFFFFFF or total >= 0xFFFFFFFF
    directory = bytearray()
    with path.open("wb") as handle:
        for i in range(ENTRIES):
            name = f"photos/img_{i:03d}.png".encode()
            offset = handle.tell()
            extra = struct.pack("<HHQQ", 1, 16, entry_size, entry_size) if zip64 else b""
            size32 = 0xFFFFFFFF if zip64 else entry_size
            handle.write(
                struct.pack("<4sHHHHHLLLHH", b"PK\x03\x04", 45, 0, 0, 0, 0, crc, size32, size32, len(name), len(extra))
                + name
                + extra
            )
            handle.seek(entry_size, os.SEEK_CUR)  # a hole: zeros without writing them
            cextra = struct.pack("<HHQQQ", 1, 24, entry_size, entry_size, offset) if zip64 else b""
            directory += struct.pack(
                "<4sHHHHHHLLLHHHHHLL",
                b"PK\x01\x02",
                45,
                45,
                0,
                0,
                0,
                0,
                crc,
                size32,
                size32,
                len(name),
                len(cextra),
                0,
                0,
                0,
                0,
                0xFFFFFFFF if zip64 else offset,
            )
            directory += name + cextra
        cd_offset = handle.tell()
        handle.write(directory)
        if zip64:
            eocd64_offset = handle.tell()
            handle.write(
                struct.pack(
                    "<4sQHHLLQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, ENTRIES, ENTRIES, len(directory), cd_offset
                )
            )
            handle.write(struct.pack("<4sLQL", b"PK\x06\x07", 0, eocd64_offset, 1))
            handle.write(struct.pack("<4sHHHHLLH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0))
        else:
            handle.write(struct.pack("<4sHHHHLLH", b"PK\x05\x06", 0, 0, ENTRIES, ENTRIES, len(directory), cd_offset, 0))


class FileRangeReader:
    """Range reads from a local file: the inspector's own cost, without an S3 server in the way."""

    def __init__(self, path: Path) -> None:
        self.size = path.stat().st_size
        self._path = path

    def read(self, start: int, length: int) -> bytes:
        with self._path.open("rb") as handle:
            handle.seek(start)
            return handle.read(length)


def bench_inspection(endpoint: str, sizes: list[int], repeats: int) -> list[dict[str, Any]]:
    from loradrop.archive import ArchiveLimits, S3RangeReader, inspect_archive

    s3 = s3_client(endpoint)
    s3.create_bucket(Bucket="inspect")
    limits = ArchiveLimits(max_archive_bytes=8 * GIB, max_uncompressed_bytes=8 * GIB, max_compression_ratio=10**6)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for size in sizes:
            source = Path(scratch) / f"a-{size}.zip"
            write_stored_zip(source, size)
            actual = source.stat().st_size
            local = []
            for _ in range(repeats):
                started = time.perf_counter()
                inspect_archive(FileRangeReader(source), limits)
                local.append(time.perf_counter() - started)
            s3.upload_file(str(source), "inspect", source.name)
            source.unlink()
            # moto answers a range GET by reading the whole object: its time is the server's, not ours.
            started = time.perf_counter()
            s3.get_object(Bucket="inspect", Key=source.name, Range="bytes=0-0")["Body"].read()
            one_byte = time.perf_counter() - started
            ours, reads, requests = [], 0, 0
            for _ in range(repeats):
                started = time.perf_counter()
                reader = S3RangeReader(s3, "inspect", source.name, actual)
                report = inspect_archive(reader, limits)
                ours.append(time.perf_counter() - started)
                reads, requests = reader.bytes_read, reader.requests
            assert report.images == ENTRIES
            naive = []
            naive_repeats = repeats if size <= 100 * MIB else 1
            for _ in range(naive_repeats):
                started = time.perf_counter()
                target = Path(scratch) / "download.zip"
                # One plain GET, streamed to disk (download_file's ranged GETs are slow on moto, see above).
                body = s3.get_object(Bucket="inspect", Key=source.name)["Body"]
                with target.open("wb") as handle:
                    shutil.copyfileobj(body, handle, 8 * MIB)
                with zipfile.ZipFile(target) as archive:
                    images = [i for i in archive.infolist() if i.filename.endswith(".png")]
                target.unlink()
                naive.append(time.perf_counter() - started)
            assert len(images) == ENTRIES
            s3.delete_object(Bucket="inspect", Key=source.name)
            rows.append(
                {
                    "size": actual,
                    "bytes_read": reads,
                    "requests": requests,
                    "ours_s": _median(ours),
                    "local_s": _median(local),
                    "moto_one_byte_s": one_byte,
                    "naive_s": _median(naive),
                    "naive_bytes": actual,
                    "repeats": repeats,
                    "naive_repeats": naive_repeats,
                }
            )
            print(f"  inspection {_size(size)}: {rows[-1]}", flush=True)
    return rows


# ----- 2. weights transfer -----
def _store_default(name: str) -> int:
    from loradrop.settings import StoreSettings

    value: int = StoreSettings.model_fields[name].default
    return value


PART_MIB, THREADS = _store_default("part_size_mib"), _store_default("part_concurrency")
TRANSFER_ROUNDS = 3


@dataclass
class TransferResult:
    method: str
    size: int
    seconds: float
    peak_rss: int
    detail: str = ""


def transfer_worker(args: argparse.Namespace) -> None:
    """Runs in a fresh process so that its peak RSS is the transfer's own."""
    import httpx

    from loradrop.egress import OutputPolicy
    from loradrop.weights import PartPlan, transfer_weights

    s3 = s3_client(args.endpoint)
    config = PartPlan.mib(args.part_mib, args.concurrency).transfer_config()  # the same for every method
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    started = time.perf_counter()
    detail = ""
    if args.method == "loradrop":
        origin = args.url.split("/outputs/")[0]
        with httpx.Client(timeout=60) as http:
            stored = transfer_weights(
                url=args.url,
                http=http,
                policy=OutputPolicy(origin),
                s3=s3,
                bucket=args.bucket,
                key=args.key,
                metadata={"job-id": "bench"},
                plan=PartPlan.mib(args.part_mib, args.concurrency),
            )
        detail = stored.sha256[:12]
    elif args.method == "upload_file":
        s3.upload_file(args.file, args.bucket, args.key, Config=config)
    elif args.method == "naive":
        with tempfile.NamedTemporaryFile(dir=args.tmp) as handle, httpx.stream("GET", args.url, timeout=60) as answer:
            for chunk in answer.iter_raw(MIB):
                handle.write(chunk)
            handle.flush()
            s3.upload_file(handle.name, args.bucket, args.key, Config=config)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"seconds": seconds, "peak_rss": peak, "baseline_rss": baseline, "detail": detail}))


def _run_worker(**kwargs: Any) -> dict[str, Any]:
    argv = [PYTHON, "-m", "loradrop_local.bench", "transfer-worker"]
    for name, value in kwargs.items():
        argv += [f"--{name.replace('_', '-')}", str(value)]
    output = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=900)
    result: dict[str, Any] = json.loads(output.stdout.strip().splitlines()[-1])
    return result


def bench_transfer(
    endpoint: str, sizes: list[int], tuning_size: int
) -> tuple[list[TransferResult], list[dict[str, Any]]]:
    s3 = s3_client(endpoint)
    s3.create_bucket(Bucket="weights")
    tasks = {f"bench{size}": size for size in sizes}
    results: list[TransferResult] = []
    tuning: list[dict[str, Any]] = []
    with simulator_process(tasks) as sim_url, tempfile.TemporaryDirectory() as scratch:
        for size in sizes:
            url = f"{sim_url}/outputs/bench{size}/lora-bench{size}.safetensors"
            local_file = Path(scratch) / "weights.bin"
            with local_file.open("wb") as handle:
                handle.truncate(size)
            common = {"endpoint": endpoint, "bucket": "weights", "url": url, "file": local_file, "tmp": scratch}
            # Methods take turns, three rounds: a burst of noise on the shared machine hits all of them.
            runs: dict[str, list[dict[str, Any]]] = {}
            for _ in range(TRANSFER_ROUNDS):
                for method in ("loradrop", "upload_file", "naive"):
                    run = _run_worker(
                        method=method, key=f"{method}-{size}", part_mib=PART_MIB, concurrency=THREADS, **common
                    )
                    runs.setdefault(method, []).append(run)
            for method, measured in runs.items():
                seconds = _median([r["seconds"] for r in measured])
                peak = max(r["peak_rss"] for r in measured)
                results.append(TransferResult(method, size, seconds, peak, measured[0]["detail"]))
                print(f"  transfer {_size(size)} {method}: {seconds:.2f}s rss {peak / MIB:.0f} MiB", flush=True)
            local_file.unlink()
        url = f"{sim_url}/outputs/bench{tuning_size}/lora.safetensors"
        for part, concurrency in ((5, 4), (8, 4), (8, 8), (16, 4), (32, 4)):
            run = _run_worker(
                method="loradrop",
                key=f"tune-{part}-{concurrency}",
                part_mib=part,
                concurrency=concurrency,
                endpoint=endpoint,
                bucket="weights",
                url=url,
                file="-",
                tmp=scratch,
            )
            tuning.append({"part_mib": part, "concurrency": concurrency, **run})
            print(f"  tuning {part} MiB x {concurrency}: {run['seconds']:.2f}s", flush=True)
    return results, tuning


# ----- 3. cold start -----
FACTORIES = {
    "submit_training": "submitter",
    "receive_webhook": "tracker",
    "store_weights": "storer",
    "reconcile_jobs": "reconciler",
}
COLD_ENV = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "x",
    "AWS_SECRET_ACCESS_KEY": "x",
    "JOBS_TABLE": "t",
    "EVENT_BUS_NAME": "b",
    "WAVESPEED_SECRET_ID": "s",
    "WEBHOOK_URL": "https://h/w",
    "STORE_QUEUE_URL": "https://q/s",
    "INTAKE_QUEUE_URL": "https://q/i",
    "WEIGHTS_BUCKET": "w",
    "POWERTOOLS_SERVICE_NAME": "loradrop",
    "POWERTOOLS_METRICS_NAMESPACE": "loradrop",
}


def _cold(code: str, env: dict[str, str]) -> float:
    script = f"import time\nt=time.perf_counter()\n{code}\nprint(time.perf_counter()-t)"
    output = subprocess.run(
        [PYTHON, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env=os.environ | env,
        cwd=ROOT / "functions",
    )
    return float(output.stdout.strip().splitlines()[-1])


def bench_cold_start(repeats: int) -> dict[str, Any]:
    baseline = [_cold("import boto3\nboto3.client('s3')", COLD_ENV) for _ in range(repeats)]
    rows: dict[str, Any] = {"baseline": _median(baseline)}
    for module, factory in FACTORIES.items():
        code = f"import {module}.app\nfrom loradrop import services\nservices.{factory}()"
        times = [_cold(code, COLD_ENV) for _ in range(repeats)]
        rows[module] = _median(times)
        print(
            f"  cold start {module}: {rows[module] * 1000:.0f} ms (baseline {rows['baseline'] * 1000:.0f} ms)",
            flush=True,
        )
    try:
        tracer = [_cold("from aws_lambda_powertools import Tracer\nTracer()", COLD_ENV) for _ in range(repeats)]
        rows["tracer"] = _median(tracer)
    except subprocess.CalledProcessError:
        rows["tracer"] = None
    return rows


def deployment_sizes() -> dict[str, int]:
    build = ROOT / ".aws-sam" / "build"
    sizes: dict[str, int] = {}
    if build.exists():
        for folder in sorted(p for p in build.iterdir() if p.is_dir()):
            sizes[folder.name] = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    return sizes


# ----- 4. webhook path and end-to-end overhead -----
def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_pipeline(jobs: int, e2e_jobs: int, e2e_size: int) -> dict[str, Any]:
    from loradrop_local.aws.events import http_api_event
    from loradrop_local.aws.stack import LocalStack, StackOptions
    from loradrop_local.dataset import training_zip
    from loradrop_local.simulator import SimulatorConfig

    options = StackOptions(
        # The reconciler runs as deployed (compressed): a webhook that went astray costs seconds, and the
        # report counts the webhook answers so that it shows.
        reconcile_every=2.0,
        reconcile_after=5,
        simulator=SimulatorConfig(output_size=e2e_size, processing_after=0.01, train_seconds=0.05),
        extra_environment={"POWERTOOLS_LOG_LEVEL": "WARNING"},
        log_file=Path(tempfile.gettempdir()) / "loradrop-bench-handlers.log",
    )
    results: dict[str, Any] = {}
    with LocalStack(options) as stack:
        sim = stack.simulator
        assert sim is not None
        body = training_zip(images=4)
        calls: Counter[str] = Counter()
        durations: dict[str, list[float]] = {}
        invoke = stack.invoke

        def timed_invoke(logical_id: str, event: dict[str, Any], timeout: float | None = None) -> Any:
            started = time.perf_counter()
            try:
                return invoke(logical_id, event, timeout)
            finally:
                if counting.is_set():
                    durations.setdefault(logical_id, []).append(time.perf_counter() - started)

        def count_call(model: Any, **_: Any) -> None:
            if counting.is_set():
                calls[f"{model.service_model.service_name}:{model.name}"] += 1

        counting = threading.Event()
        stack.invoke = timed_invoke  # type: ignore[method-assign]
        # End to end, one job at a time: upload → POST at WaveSpeed, webhook sent → COMPLETED.
        to_post, to_done = [], []
        for i in range(e2e_jobs):
            if i == 1:  # the first job created every client: count what the handlers call from here on
                from loradrop import services

                for service in ("s3", "dynamodb", "sqs", "events"):
                    services.aws(service).meta.events.register("before-call", count_call)
                counting.set()
            key = f"uploads/e2e-{i}.zip"
            sent = time.time()
            job_id = stack.upload(key, body)
            job = stack.wait_for(job_id, {"COMPLETED"}, timeout=120)
            post = next(r for r in sim.submissions() if f"e2e-{i}.zip" in str((r.body or {}).get("data")))
            task = sim.tasks[job["prediction_id"]]
            completed = next(h["at"] for h in job["history"] if h["status"] == "COMPLETED")
            done_at = datetime.fromisoformat(completed.replace("Z", "+00:00")).timestamp()
            to_post.append(post.at - sent)
            assert task.ended_at is not None
            to_done.append(done_at - task.ended_at)
        counting.clear()
        stack.invoke = invoke  # type: ignore[method-assign]
        counted = max(1, e2e_jobs - 1)
        results["calls_per_job"] = {name: count / counted for name, count in sorted(calls.items())}
        results["seconds_per_job"] = {name: sum(d) / counted for name, d in durations.items()}
        results["invocations_per_job"] = {name: len(d) / counted for name, d in durations.items()}
        results["item_bytes"] = len(json.dumps(stack.job(job_id)))
        answers: Counter[int] = Counter()
        for task in list(sim.tasks.values()):
            answers.update(task.webhook_answers)
        results["webhook_answers"] = dict(answers)
        results["upload_to_post"] = _median(to_post)
        results["webhook_to_completed"] = _median(to_done)
        print(
            f"  e2e: upload->POST {results['upload_to_post'] * 1000:.0f} ms, webhook->COMPLETED "
            f"{results['webhook_to_completed']:.2f} s ({_size(e2e_size)})",
            flush=True,
        )
        # The receiver, warm and in process: first deliveries, repeats, and forgeries.
        sim.config.output_size = MIB
        sim.faults.webhook.extend(["drop"] * jobs)
        ids = [stack.upload(f"uploads/hook-{i}.zip", body) for i in range(jobs)]
        waiting = [stack.wait_for(job_id, {"SUBMITTED"}) for job_id in ids]
        time.sleep(0.5)

        def event_for(task_id: str, forged: bool = False) -> dict[str, Any]:
            raw = json.dumps(sim.tasks[task_id].public(sim.url)).encode()
            ts = str(int(time.time()))
            signature = "v3," + "0" * 64 if forged else sim.sign(task_id, ts, raw)
            headers = {
                "content-type": "application/json",
                "webhook-id": task_id,
                "webhook-timestamp": ts,
                "webhook-signature": signature,
            }
            return http_api_event("POST", "/webhooks/wavespeed", headers, raw, "203.0.113.1")

        def timed(events: list[dict[str, Any]], expect: int) -> tuple[list[float], float]:
            latencies = []
            started = time.perf_counter()
            for event in events:
                t = time.perf_counter()
                answer = stack.invoke("ReceiveWebhookFunction", event)
                latencies.append(time.perf_counter() - t)
                assert answer["statusCode"] == expect, answer
            return latencies, len(events) / (time.perf_counter() - started)

        tasks = [job["prediction_id"] for job in waiting]
        for label, events, expect in (
            ("first delivery", [event_for(t) for t in tasks], 200),
            ("repeat delivery", [event_for(t) for t in tasks], 200),
            ("forged", [event_for(t, forged=True) for t in tasks], 401),
        ):
            latencies, rate = timed(events, expect)
            results[label] = {"p50": _percentile(latencies, 0.5), "p99": _percentile(latencies, 0.99), "rate": rate}
            print(
                f"  webhook {label}: p50 {results[label]['p50'] * 1000:.1f} ms, "
                f"p99 {results[label]['p99'] * 1000:.1f} ms, {rate:.0f}/s",
                flush=True,
            )
    return results


# ----- 5. scale on paper -----
# us-east-1 list prices as published by AWS (checked 2025; verify before quoting): per unit below.
PRICES = {
    "lambda_gb_s": 0.0000133334,  # arm64
    "lambda_request": 0.20 / 1e6,
    "sqs_request": 0.40 / 1e6,
    "ddb_write_unit": 0.625 / 1e6,  # on-demand, per 1 KB written (index updates count too)
    "ddb_read_unit": 0.125 / 1e6,  # on-demand, per 4 KB strongly consistent read
    "s3_put": 0.005 / 1000,  # PUT, COPY, POST, LIST
    "s3_get": 0.0004 / 1000,
    "s3_gb_month": 0.023,
    "event": 1.00 / 1e6,
    "http_api_request": 1.00 / 1e6,
}
MEMORY_MB = {
    "SubmitTrainingFunction": 512,
    "ReceiveWebhookFunction": 512,
    "StoreWeightsFunction": 1024,
    "ReconcileJobsFunction": 512,
}
TIERS = [("Bronze", 2, 2), ("Silver", 500, 300), ("Gold", 3000, 3000), ("Ultra", 5000, 10000)]


def scale_on_paper(pipeline: dict[str, Any], output_size: int) -> list[str]:
    calls = pipeline["calls_per_job"]
    seconds = pipeline["seconds_per_job"]
    invocations = pipeline["invocations_per_job"]

    def total(prefix: str, names: tuple[str, ...] = ()) -> float:
        return sum(v for k, v in calls.items() if k.startswith(prefix) and (not names or k.split(":")[1] in names))

    item_kb = max(1, -(-pipeline["item_bytes"] // 1024))
    ddb_writes = total("dynamodb:", ("PutItem", "UpdateItem"))
    ddb_reads = total("dynamodb:", ("GetItem", "Query"))
    s3_puts = total(
        "s3:",
        (
            "PutObject",
            "CreateMultipartUpload",
            "UploadPart",
            "CompleteMultipartUpload",
            "PutObjectTagging",
            "ListMultipartUploads",
        ),
    )
    s3_gets = total("s3:", ("GetObject", "HeadObject")) + 1  # + WaveSpeed's download of the ZIP
    # SQS: our sends + S3's notification + Lambda's receive and delete for each message
    messages = 1 + total("sqs:", ("SendMessage",))
    sqs_requests = total("sqs:") + 2 * messages
    gb_s = sum(seconds.get(f, 0.0) * MEMORY_MB[f] / 1024 for f in MEMORY_MB)
    rows = [
        ("Lambda compute", f"{gb_s:.2f} GB-s", gb_s * PRICES["lambda_gb_s"]),
        ("Lambda requests", f"{sum(invocations.values()):.1f}", sum(invocations.values()) * PRICES["lambda_request"]),
        ("SQS requests", f"{sqs_requests:.1f}", sqs_requests * PRICES["sqs_request"]),
        (
            "DynamoDB writes",
            f"{ddb_writes:.1f} x ~{item_kb} KB (+ index updates)",
            ddb_writes * (item_kb + 1) * PRICES["ddb_write_unit"],
        ),
        ("DynamoDB reads", f"{ddb_reads:.1f}", ddb_reads * PRICES["ddb_read_unit"]),
        ("S3 PUT-class requests", f"{s3_puts:.1f}", s3_puts * PRICES["s3_put"]),
        ("S3 GET-class requests", f"{s3_gets:.1f}", s3_gets * PRICES["s3_get"]),
        ("EventBridge events", f"{total('events:'):.1f}", total("events:") * PRICES["event"]),
        ("HTTP API requests (webhooks)", "1", PRICES["http_api_request"]),
        (f"S3 storage, {_size(output_size)} of weights, one month", "", output_size / GIB * PRICES["s3_gb_month"]),
    ]
    per_job = sum(cost for *_, cost in rows)
    lines = [
        "Per-job operations counted on the local stack (the handlers' own AWS calls, plus what S3, Lambda's",
        "SQS poller and WaveSpeed do on a job's behalf), priced at us-east-1 list prices. Lambda time is the",
        "local stack's handler time, a stand-in: in Lambda the submit and webhook paths add WaveSpeed's",
        "latency, and StoreWeights runs at CloudFront-to-S3 speed.",
        "",
        "| item | per job | cost per 1,000 jobs (USD) |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {amount} | {cost * 1000:.4f} |" for name, amount, cost in rows]
    lines += [
        f"| **total** | | **{per_job * 1000:.2f}** |",
        "",
        "Handler calls per job (including the reconciler's periodic queries, spread over the jobs): "
        + ", ".join(f"{k} {v:.3g}" for k, v in calls.items())
        + ".",
        "",
        "Throughput: WaveSpeed's tier decides. SubmitTraining runs at most 2 at a time (ScalingConfig",
        f"MaximumConcurrency); at {seconds.get('SubmitTrainingFunction', 0) * 1000:.0f} ms a submission here "
        "(plus WaveSpeed's answer time in reality, say 1 s) that is ~120 task starts a minute.",
        "",
        "| tier | starts/min | concurrent tasks | first bottleneck | setting that moves it |",
        "|---|---|---|---|---|",
    ]
    for tier, starts, concurrent in TIERS:
        if tier == "Bronze":
            bottleneck, setting = "WaveSpeed: 2 concurrent tasks (~6 jobs/h at 20 min each)", "a higher tier"
        elif starts <= 120:
            bottleneck, setting = "WaveSpeed's start rate", "a higher tier"
        else:
            bottleneck = "SubmitTraining's MaximumConcurrency 2 (~120 starts/min)"
            setting = f"raise MaximumConcurrency to ~{max(2, starts // 60 + 1)} (and the HTTP API's 100 rps throttle)"
        lines.append(f"| {tier} | {starts} | {concurrent} | {bottleneck} | {setting} |")
    lines += [
        "",
        "Beyond those: the webhook route is throttled at 100 requests/s (template), far above Gold's 50",
        "completions/s; the jobs table is on-demand; the `by-status` index puts each state in one partition",
        "(about 1,000 writes/s each), which only matters past ~100 job transitions a second.",
    ]
    return lines


# ----- report -----
def write_report(data: dict[str, Any], seconds: float, path: Path = REPORT) -> None:
    inspection, transfers, tuning = data["inspection"], data["transfer"], data["tuning"]
    cold, pipeline, sizes = data["cold"], data["pipeline"], data["sizes"]
    lines = [
        "# Benchmarks",
        "",
        f"`make bench` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {seconds:.0f} s in all. "
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.platform()}; shared and noisy, so",
        "every figure stands beside its baseline measured in the same run. moto's server and the WaveSpeed",
        "simulator run in their own processes on loopback.",
        "",
        "## 1. ZIP inspection vs archive size",
        "",
        f"Stored archives of {ENTRIES} images in moto's S3. loradrop: range reads of the end records and central",
        "directory. Naive: download the archive, open it with `zipfile`.",
        "",
        "| archive | loradrop bytes read | range GETs | loradrop time (moto) | moto: 1-byte GET | loradrop time "
        "(local file) | naive bytes | naive time | naive / loradrop (moto) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in inspection:
        lines.append(
            f"| {_size(row['size'])} | {row['bytes_read']:,} | {row['requests']} | {row['ours_s'] * 1000:.1f} ms "
            f"| {row['moto_one_byte_s'] * 1000:.1f} ms | {row['local_s'] * 1000:.2f} ms "
            f"| {row['naive_bytes']:,} | {row['naive_s'] * 1000:.0f} ms | {row['naive_s'] / row['ours_s']:.0f}x |"
        )
    small, large = inspection[0], next((r for r in inspection if r["size"] >= GIB), inspection[-1])
    lines += [
        "",
        "Target: bytes read independent of size (≤ 256 KiB + directory): "
        f"max {max(r['bytes_read'] for r in inspection):,} bytes. "
        f"Target: time(1 GiB) ≤ 1.5x time(1 MiB): {large['ours_s'] / small['ours_s']:.2f}x against moto. "
        f"Medians of {small['repeats']} (naive: {small['naive_repeats']} for small archives, 1 for large). "
        "Against moto the time grows with the archive because moto reads the whole object to answer any range "
        "(the 1-byte GET column); on a local file, the inspector's own time: "
        f"{large['local_s'] / small['local_s']:.2f}x from {_size(small['size'])} to {_size(large['size'])}.",
        "",
        "## 2. Weights transfer vs size",
        "",
        "The simulator serves a `.safetensors` file over loopback; each method runs in a fresh process whose peak",
        "RSS is reported. loradrop: `transfer_weights` (stream → multipart upload hashing SHA-256 on the way,",
        f"then two tags), with StoreWeights' defaults: {PART_MIB} MiB parts, {THREADS} threads. (a) `upload_file` of",
        "the same number of bytes from local disk. (b) naive: download to /tmp, then `upload_file`. All three use",
        f"the same part size and threads; medians of {TRANSFER_ROUNDS} rounds in which the methods take turns.",
        "",
        "| size | method | seconds | MiB/s | peak RSS (MiB) | throughput vs (a) |",
        "|---|---|---|---|---|---|",
    ]
    by_size: dict[int, dict[str, TransferResult]] = {}
    for result in transfers:
        by_size.setdefault(result.size, {})[result.method] = result
    for size, methods in by_size.items():
        base = methods["upload_file"].seconds
        for method in ("loradrop", "upload_file", "naive"):
            r = methods[method]
            lines.append(
                f"| {_size(size)} | {method} | {r.seconds:.2f} | {size / MIB / r.seconds:.0f} "
                f"| {r.peak_rss / MIB:.0f} | {base / r.seconds:.2f}x |"
            )
    rss = {size: m["loradrop"].peak_rss for size, m in by_size.items()}
    ratios = {size: m["upload_file"].seconds / m["loradrop"].seconds for size, m in by_size.items()}
    worst_ratio = min(ratios.values())
    smallest, largest = min(rss), max(rss)
    lines += [
        "",
        f"Peak RSS of loradrop's transfer: max {max(rss.values()) / MIB:.0f} MiB (target ≤ 256 MiB); "
        f"RSS({_size(largest)}) / RSS({_size(smallest)}) = {rss[largest] / rss[smallest]:.2f} (target ≤ 1.25). "
        f"Throughput vs (a), target ≥ 0.8x: {'met' if worst_ratio >= 0.8 else 'missed'}, lowest {worst_ratio:.2f}x. "
        "loradrop reads one HTTP stream and hashes it in one thread while `upload_file` reads the file with "
        "several threads; on this 2-core machine the simulator, moto and the transfer are all CPU-bound Python "
        "processes sharing the cores, so the download adds to the upload instead of overlapping it.",
        "",
        "Tuning (loradrop, same file):",
        "",
        "| part size | threads | seconds | peak RSS (MiB) |",
        "|---|---|---|---|",
    ]
    for row in tuning:
        lines.append(
            f"| {row['part_mib']} MiB | {row['concurrency']} | {row['seconds']:.2f} | {row['peak_rss'] / MIB:.0f} |"
        )
    lines += [
        "",
        "## 3. Cold start",
        "",
        "A fresh process imports the handler module and builds its settings and clients (what Lambda's init",
        f"does), median of {data['cold_repeats']}; baseline `import boto3; boto3.client('s3')` in the same run.",
        "",
        "| handler | init (ms) | vs baseline |",
        "|---|---|---|",
        f"| baseline | {cold['baseline'] * 1000:.0f} | 1.00x |",
    ]
    for module in FACTORIES:
        lines.append(f"| {module} | {cold[module] * 1000:.0f} | {cold[module] / cold['baseline']:.2f}x |")
    tracer = cold.get("tracer")
    worst = max(cold[m] / cold["baseline"] for m in FACTORIES)
    lines += [
        "",
        f"Target ≤ 1.5x: {'met' if worst <= 1.5 else f'missed, worst {worst:.2f}x'}. What costs more than the "
        "baseline: Powertools (logger, metrics, batch or event handler ≈ 80-120 ms), httpx (≈ 35 ms), the",
        "pydantic models (≈ 40 ms to build) and one client per AWS service the function uses (≈ 10 ms each",
        "after the first); StoreWeights also loads the S3 transfer manager. Each function imports only its own",
        "part of the domain package.",
        "",
        "Tracing: the handlers do not create Powertools' `Tracer` (it imports the X-Ray SDK); the template's",
        "`Tracing: Active` gives Lambda-level traces at no init cost. "
        + (
            f"`Tracer()` alone costs {tracer * 1000:.0f} ms here."
            if tracer
            else "The X-Ray SDK is not installed, so `Tracer()` cannot be measured here."
        ),
        "",
        "Deployment sizes (`sam build` output, unzipped):",
        "",
        "| artifact | size |",
        "|---|---|",
    ]
    for name, size in sizes.items():
        lines.append(f"| {name} | {size / MIB:.1f} MiB |")
    if not sizes:
        lines.append("| (run `make build` first) | - |")
    lines += [
        "",
        "## 4. Webhook path and pipeline overhead",
        "",
        f"ReceiveWebhook warm and in process (moto + simulator on loopback), {data['hook_jobs']} jobs each:",
        "",
        "| delivery | p50 (ms) | p99 (ms) | per second (one thread) |",
        "|---|---|---|---|",
    ]
    for label in ("first delivery", "repeat delivery", "forged"):
        row = pipeline[label]
        lines.append(f"| {label} | {row['p50'] * 1000:.1f} | {row['p99'] * 1000:.1f} | {row['rate']:.0f} |")
    lines += [
        "",
        "A first delivery verifies, finds the job, asks WaveSpeed for the task and hands off to the store queue;",
        "a repeat stops after the lookup; a forgery stops at the signature.",
        "",
        f"End to end on the local stack, median of {data['e2e_jobs']} jobs run one at a time: upload → WaveSpeed POST "
        f"received **{pipeline['upload_to_post'] * 1000:.0f} ms**; webhook sent → COMPLETED for a "
        f"{_size(data['e2e_size'])} output **{pipeline['webhook_to_completed']:.2f} s**. Webhook answers seen by the "
        f"simulator (HTTP status: count; 0 = no answer): {pipeline.get('webhook_answers', {})}.",
        "",
        "## 5. Scale on paper",
        "",
        *scale_on_paper(pipeline, data["e2e_size"]),
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loradrop_local.bench", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    worker = sub.add_parser("transfer-worker")
    for name in ("method", "endpoint", "bucket", "key", "url", "file", "tmp"):
        worker.add_argument(f"--{name}")
    worker.add_argument("--part-mib", type=int, default=16)
    worker.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--report-only", action="store_true", help="rewrite the report from docs/benchmarks.json")
    args = parser.parse_args(argv)
    if args.command == "transfer-worker":
        transfer_worker(args)
        return 0
    if args.report_only:
        raw = json.loads(RAW.read_text())
        raw["transfer"] = [TransferResult(**r) for r in raw["transfer"]]
        write_report(raw, raw["seconds"])
        return 0
    started = time.monotonic()
    quick = args.quick
    data: dict[str, Any] = {
        "cold_repeats": 5 if quick else 7,
        "hook_jobs": 20 if quick else 100,
        "e2e_jobs": 3 if quick else 20,
        "e2e_size": 4 * MIB if quick else 100 * MIB,
    }
    print("cold start ...", flush=True)
    data["cold"] = bench_cold_start(data["cold_repeats"])
    data["sizes"] = deployment_sizes()
    with moto_process() as endpoint:
        print("ZIP inspection ...", flush=True)
        data["inspection"] = bench_inspection(
            endpoint, [MIB, 100 * MIB] if quick else [MIB, 100 * MIB, GIB, 4 * GIB], repeats=5
        )
    with moto_process() as endpoint:
        print("weights transfer ...", flush=True)
        sizes = [16 * MIB, 64 * MIB] if quick else [100 * MIB, 500 * MIB, GIB]
        data["transfer"], data["tuning"] = bench_transfer(endpoint, sizes, tuning_size=sizes[1])
    print("pipeline ...", flush=True)
    data["pipeline"] = bench_pipeline(data["hook_jobs"], data["e2e_jobs"], data["e2e_size"])
    data["seconds"] = time.monotonic() - started
    RAW.write_text(json.dumps(data | {"transfer": [vars(r) for r in data["transfer"]]}, indent=1, default=str))
    write_report(data, data["seconds"])
    print(f"wrote {REPORT}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
