"""`make bench`: loradrop's speed and memory, each figure beside its obvious alternative, one run.

Writes docs/benchmarks.md. moto's server and the WaveSpeed simulator run in their own processes
so that memory figures are the storing process's alone. Nothing here asserts: it measures.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from typing import Any

from loradrop_dev.bench.cold_start import bench_cold_start, deployment_sizes
from loradrop_dev.bench.dataset import COUNTS, bench_dataset
from loradrop_dev.bench.emulated import bench_emulated_cold_start
from loradrop_dev.bench.inspection import bench_inspection
from loradrop_dev.bench.pipeline import bench_pipeline
from loradrop_dev.bench.processes import GIB, MIB, RAW, REPORT, moto_process
from loradrop_dev.bench.report import write_report
from loradrop_dev.bench.transfer import TransferResult, bench_transfer, transfer_worker


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loradrop_dev.bench", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    worker = sub.add_parser("transfer-worker")
    for name in ("method", "endpoint", "bucket", "key", "url", "file", "tmp"):
        worker.add_argument(f"--{name}")
    worker.add_argument("--part-mib", type=int, default=16)
    worker.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--report-only", action="store_true", help="rewrite the report from docs/benchmarks.json")
    parser.add_argument(
        "--only",
        choices=["dataset"],
        help="measure this part alone and rewrite the report with the other parts' last figures (docs/benchmarks.json)",
    )
    args = parser.parse_args(argv)
    if args.command == "transfer-worker":
        transfer_worker(args)
        return 0
    if args.report_only or args.only:
        rewrite_report(args.only, args.quick)
        return 0
    started = time.monotonic()
    quick = args.quick
    data: dict[str, Any] = {
        "cold_repeats": 5 if quick else 15,
        "emulated_repeats": 2 if quick else 5,  # ~10 s a process under emulation
        "hook_jobs": 20 if quick else 100,
        "e2e_jobs": 3 if quick else 20,
        "e2e_size": 4 * MIB if quick else 100 * MIB,
    }
    print("cold start ...", flush=True)
    data["cold"] = bench_cold_start(data["cold_repeats"])
    data["sizes"] = deployment_sizes()
    print("cold start in the emulated arm64 container ...", flush=True)
    data["emulated"] = bench_emulated_cold_start(data["emulated_repeats"])
    with moto_process() as endpoint:
        print("ZIP inspection ...", flush=True)
        data["inspection"] = bench_inspection(
            endpoint, [MIB, 100 * MIB] if quick else [MIB, 100 * MIB, GIB, 4 * GIB], repeats=5
        )
    with moto_process() as endpoint:
        print("dataset survey ...", flush=True)
        data["dataset"] = bench_dataset(endpoint, [10, 100] if quick else COUNTS, repeats=3)
    with moto_process() as endpoint:
        print("weights transfer ...", flush=True)
        sizes = [16 * MIB, 64 * MIB] if quick else [100 * MIB, 500 * MIB, GIB]
        data["transfer"], data["tuning"] = bench_transfer(endpoint, sizes, tuning_size=sizes[1])
    print("pipeline ...", flush=True)
    data["pipeline"] = bench_pipeline(data["hook_jobs"], data["e2e_jobs"], data["e2e_size"])
    data["seconds"] = time.monotonic() - started
    data["run_at"] = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    RAW.write_text(json.dumps(data | {"transfer": [vars(r) for r in data["transfer"]]}, indent=1, default=str))
    write_report(data, data["seconds"])
    print(f"wrote {REPORT}")
    return 0


def rewrite_report(only: str | None, quick: bool) -> None:
    """The report from the last full run's figures (docs/benchmarks.json), with `only` measured again."""
    raw = json.loads(RAW.read_text())
    if only == "dataset":
        with moto_process() as endpoint:
            print("dataset survey ...", flush=True)
            raw["dataset"] = bench_dataset(endpoint, [10, 100] if quick else COUNTS, repeats=3)
        raw["dataset_measured"] = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
        RAW.write_text(json.dumps(raw, indent=1, default=str))
    raw["transfer"] = [TransferResult(**r) for r in raw["transfer"]]
    write_report(raw, raw["seconds"])


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
