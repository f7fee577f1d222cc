"""2. Weights transfer into S3, beside boto3's upload_file of a downloaded file (each in its own process)."""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loradrop_dev.bench.processes import MIB, PYTHON, median, s3_client, simulator_process, size_text


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
    argv = [PYTHON, "-m", "loradrop_dev.bench", "transfer-worker"]
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
                seconds = median([r["seconds"] for r in measured])
                peak = max(r["peak_rss"] for r in measured)
                results.append(TransferResult(method, size, seconds, peak, measured[0]["detail"]))
                print(f"  transfer {size_text(size)} {method}: {seconds:.2f}s rss {peak / MIB:.0f} MiB", flush=True)
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
