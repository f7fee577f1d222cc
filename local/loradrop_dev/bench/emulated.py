"""3b. Each handler's cold start as `sam build` deploys it, in the arm64 Lambda container `sam local` runs,
beside the bare boto3 baseline in that same container.

The container is the stand-in image (loradrop_local.sam.image) under qemu's arm64 emulation, so absolute
times mean little (emulation slows everything several times over); the ratio to the baseline, measured in
the same container in the same run, is what carries over. What runs is the build itself: each function's
directory and the dependencies layer with their arm64 wheels and bytecode, mounted read-only as Lambda
mounts /var/task and /opt. One container makes every measurement, each in a fresh `python3 -S` process,
baseline and handler taking turns; times are CPU time, as in section 3.
"""

from __future__ import annotations

import json
from typing import Any

from loradrop_dev.bench.cold_start import BASELINE, COLD_ENV, FACTORIES, init_code, stock_layer
from loradrop_dev.bench.processes import ROOT, median
from loradrop_local.aws.cloudformation import load_template
from loradrop_local.sam.emulators import sam_problem
from loradrop_local.sam.image import IMAGE, docker

BUILD = ROOT / ".aws-sam" / "build"
# Runs inside the container: `repeats` rounds, each a baseline run then a handler run, per handler.
DRIVER = """
import json, os, subprocess, sys
cases, repeats, environment = json.loads(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
def cold(code, path):
    script = "import time\\nt=time.process_time()\\n" + code + "\\nprint(time.process_time()-t)"
    done = subprocess.run([sys.executable, "-S", "-c", script], capture_output=True, text=True,
                          env=environment | {"PYTHONPATH": path}, cwd="/tmp")
    if done.returncode:
        raise SystemExit(f"{code!r} failed on {path}: {done.stderr[-2000:]}")
    return float(done.stdout.split()[-1])
samples = {}
for _ in range(repeats):
    for name, code, path in cases:
        samples.setdefault(name + ":baseline", []).append(cold(%r, "/stock"))
        samples.setdefault(name, []).append(cold(code, path))
print(json.dumps(samples))
"""


def functions_by_module() -> dict[str, str]:
    """Each handler module's function in the built template (e.g. submit_training: SubmitTrainingFunction)."""
    resources = load_template(BUILD / "template.yaml")["Resources"]
    return {
        resource["Properties"]["Handler"].split(".")[0]: logical_id
        for logical_id, resource in resources.items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


def bench_emulated_cold_start(repeats: int) -> dict[str, Any]:
    """Medians of each handler's and the baseline's CPU seconds in the container, and each handler's ratio: the
    median of its runs over the baseline run just before each. {"skipped": reason} without Docker."""
    problem = sam_problem()
    if problem:
        print(f"  emulated cold start skipped: {problem}", flush=True)
        return {"skipped": problem}
    stock = stock_layer()  # boto3 as pip installs it: pure Python, so the same files serve arm64
    functions = functions_by_module()
    cases = [
        (module, init_code(module, factory), f"/var/task/{functions[module]}:/opt/python")
        for module, factory in FACTORIES.items()
        if module in functions
    ]
    environment = COLD_ENV | {"LANG": "C.UTF-8"}
    answer = docker(
        "run",
        "--rm",
        "--platform",
        "linux/arm64",
        "--network",
        "none",  # init makes clients and reads settings: nothing may be called
        "--entrypoint",
        "/usr/bin/python3",
        *("-v", f"{BUILD}:/var/task:ro"),
        *("-v", f"{BUILD / 'DependenciesLayer'}:/opt:ro"),
        *("-v", f"{stock}:/stock:ro"),
        IMAGE,
        "-c",
        DRIVER % BASELINE,
        json.dumps(cases),
        str(repeats),
        json.dumps(environment),
        check=False,
    )
    if answer.returncode != 0:
        raise RuntimeError(f"the emulated cold start failed: {answer.stderr.strip()[-2000:]}")
    samples: dict[str, list[float]] = json.loads(answer.stdout)
    rows: dict[str, Any] = {"repeats": repeats, "architecture": "arm64 (qemu)", "samples": samples}
    for module, _code, _path in cases:
        pairs = zip(samples[module], samples[f"{module}:baseline"], strict=True)
        rows[module] = median(samples[module])
        rows[f"{module}:baseline"] = median(samples[f"{module}:baseline"])
        rows[f"{module}:ratio"] = median([handler / baseline for handler, baseline in pairs])
        print(
            f"  emulated arm64 cold start {module}: {rows[module] * 1000:.0f} ms, baseline"
            f" {rows[f'{module}:baseline'] * 1000:.0f} ms: {rows[f'{module}:ratio']:.2f}x",
            flush=True,
        )
    return rows
