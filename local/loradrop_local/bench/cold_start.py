"""3. Each handler's cold start, beside a bare `import boto3; boto3.client("s3")`."""

from __future__ import annotations

import os
import subprocess
from typing import Any

from loradrop_local.bench.processes import PYTHON, ROOT, median

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
    rows: dict[str, Any] = {"baseline": median(baseline)}
    for module, factory in FACTORIES.items():
        code = f"import {module}.app\nfrom loradrop import services\nservices.{factory}()"
        times = [_cold(code, COLD_ENV) for _ in range(repeats)]
        rows[module] = median(times)
        print(
            f"  cold start {module}: {rows[module] * 1000:.0f} ms (baseline {rows['baseline'] * 1000:.0f} ms)",
            flush=True,
        )
    try:
        tracer = [_cold("from aws_lambda_powertools import Tracer\nTracer()", COLD_ENV) for _ in range(repeats)]
        rows["tracer"] = median(tracer)
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
