"""moto and the WaveSpeed simulator in processes of their own (so memory figures are the measured
process's alone), and the constants every part of the benchmark shares."""

from __future__ import annotations

import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

ROOT = Path(__file__).resolve().parents[3]
REPORT = ROOT / "docs" / "benchmarks.md"
RAW = ROOT / "docs" / "benchmarks.json"  # the measurements behind the report
MIB = 1024 * 1024
GIB = 1024 * MIB
PYTHON = sys.executable


# ----- helpers -----
def timed[T](times: int, action: Callable[[], T]) -> tuple[list[float], list[T]]:
    """The seconds each of `times` runs of `action` took, and what each returned."""
    seconds, results = [], []
    for _ in range(times):
        started = time.perf_counter()
        results.append(action())
        seconds.append(time.perf_counter() - started)
    return seconds, results


def download(s3: Any, bucket: str, key: str, target: Path) -> Path:
    """One plain GET streamed to disk (download_file's ranged GETs are slow on moto: it reads the whole
    object for each range)."""
    with target.open("wb") as handle:
        shutil.copyfileobj(s3.get_object(Bucket=bucket, Key=key)["Body"], handle, 8 * MIB)
    return target


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


@contextmanager
def moto_process() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [PYTHON, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port)
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


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def size_text(n: int) -> str:
    return f"{n / GIB:.3g} GiB" if n >= GIB - MIB else f"{n / MIB:.3g} MiB"
