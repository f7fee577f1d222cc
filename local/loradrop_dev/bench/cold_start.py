"""3. Each handler's cold start: as `sam build` shipped it before the cold-start work, and now, beside a bare
`import boto3; boto3.client("s3")`, all in one run with the runs taking turns, so noise hits all alike.

Each measurement is a fresh `python -S` process that sees only what Lambda's would: the dependencies
layer (built for this machine by layers/deps/Makefile under .loradrop/bench-shipped; nothing from the
development environment, where rich, say, makes httpx import its command line) and the function code.
The baseline's boto3 is the pins as pip installs them (.loradrop/bench-layer), as a bare Lambda has it.
Lambda's code and layer directories are read-only, so what ships without bytecode is compiled at every
cold start: "before" is the old code and a layer without .pyc files (SAM's Python builder ships none),
"now" is today's code and layer with the bytecode the Makefiles add. Times are CPU time (see `_cold`).
"""

from __future__ import annotations

import compileall
import hashlib
import os
import py_compile
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from loradrop_dev.bench.processes import PYTHON, ROOT, median

# ----- 3. cold start -----
FACTORIES = {
    "submit_training": "submitter",
    "receive_webhook": "tracker",
    "store_weights": "storer",
    "reconcile_jobs": "reconciler",
    "publish_events": "event_publisher",
}
# What each handler's init cannot do without, with none of loradrop's code: the dependencies it imports
# (boto3, pydantic with one model, Powertools' logger, metrics and parameters, httpx), with the collector
# paused and their objects frozen as the handlers do, and the clients its init makes (the TLS context on the
# layer's hashed roots, as loradrop.tls makes it). The distance from this to the handler is what loradrop's
# own code costs.
IMPORTS = (
    "import boto3, httpx\nfrom pydantic import BaseModel\nfrom aws_lambda_powertools import Logger, Metrics\n"
    "from aws_lambda_powertools.utilities import parameters\nclass Model(BaseModel):\n    x: int\nLogger(); Metrics()\n"
)
EXTRA_IMPORTS = {"submit_training": "import zipfile\n", "store_weights": "import ssl, certifi\n"}
CLIENTS = {
    "submit_training": "boto3.client('s3'); boto3.client('dynamodb')",
    "receive_webhook": "boto3.client('dynamodb')",
    "store_weights": "boto3.client('s3'); boto3.client('dynamodb')\n"
    "httpx.Client(verify=ssl.create_default_context(capath=certifi.where().replace('cacert.pem', 'hashed')))",
    "reconcile_jobs": "boto3.client('dynamodb')",
    "publish_events": "boto3.client('events')",
}


def dependencies(module: str) -> str:
    paused = f"import gc\ngc.disable()\n{IMPORTS}{EXTRA_IMPORTS.get(module, '')}gc.freeze()\ngc.enable()\n"
    return paused + CLIENTS[module]


# The goal's yardstick, with boto3 as pip installs it (as a bare Lambda has it); beside it, the same two
# lines on the layer loradrop ships, to show what its pruning alone is worth.
BASELINE = "import boto3\nboto3.client('s3')"
# The code before the cold-start work (Powertools' BatchProcessor, a TypeAdapter for intake messages,
# every settings model built at import, every client built at init).
BEFORE_REF = "fe8d970"
STOCK = ROOT / ".loradrop" / "bench-layer"  # the pins as pip installs them: the baseline's boto3
SHIPPED = ROOT / ".loradrop" / "bench-shipped"  # the layer as layers/deps/Makefile builds it
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
    "PYTHONDONTWRITEBYTECODE": "1",  # Lambda's code directory is read-only: it compiles at every cold start
}


def _install(target: Path, inputs: list[Path], install: list[str]) -> Path:
    """Runs `install` into `target` again only when one of `inputs` changed."""
    stamp = target / ".inputs-sha256"
    digest = hashlib.sha256(b"".join(path.read_bytes() for path in inputs)).hexdigest()
    if not stamp.exists() or stamp.read_text() != digest:
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        subprocess.run(install, check=True)
        stamp.write_text(digest)
    return target


def stock_layer() -> Path:
    """The dependencies layer's pins as pip installs them (bytecode included): boto3 as a bare Lambda's."""
    requirements = ROOT / "layers" / "deps" / "requirements.txt"
    pip = [PYTHON, "-m", "pip", "install", "--quiet", "--target", str(STOCK), "-r", str(requirements)]
    return _install(STOCK, [requirements], pip)


def layer() -> Path:
    """The layer `sam build` ships (its Makefile: bytecode, botocore's models pruned), built for this machine."""
    deps = ROOT / "layers" / "deps"
    make = ["make", "--quiet", "-C", str(deps), "build-DependenciesLayer", f"ARTIFACTS_DIR={SHIPPED}"]
    make += [f"PYTHON={PYTHON}", "PLATFORM="]  # this machine's wheels, not Lambda's arm64
    inputs = sorted(deps.glob("*.py")) + [deps / name for name in ("requirements.txt", "aws-services.txt", "Makefile")]
    return _install(SHIPPED, inputs, make) / "python"


def without_bytecode(scratch: Path, stock: Path) -> Path:
    """The layer as SAM's Python builder ships it: no .pyc files."""
    bare = scratch / "layer-without-bytecode"
    shutil.copytree(stock, bare, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return bare


def code_now(scratch: Path) -> Path:
    """Today's functions/ with its bytecode, as functions/Makefile builds it."""
    built = scratch / "now" / "functions"
    shutil.copytree(ROOT / "functions", built, ignore=shutil.ignore_patterns("__pycache__", "Makefile"))
    compileall.compile_dir(built, quiet=1, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    return built


def code_before(scratch: Path) -> Path | None:
    """functions/ as it was at BEFORE_REF, without bytecode (None outside a git checkout)."""
    archive = scratch / "before.tar"
    result = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "-o", str(archive), BEFORE_REF, "functions"],  # noqa: S607 - the developer's git
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        return None
    with tarfile.open(archive) as tar:
        tar.extractall(scratch / "before", filter="data")
    return scratch / "before" / "functions"


def _cold(code: str, functions: Path, packages: Path, *, importtime: bool = False) -> tuple[float, str]:
    """The CPU time `code` takes in a fresh process: on this shared machine wall time swings by a third
    between runs with the scheduler; CPU time is what a Lambda's vCPU share has to spend."""
    script = f"import time\nt=time.process_time()\n{code}\nprint(time.process_time()-t)"
    output = subprocess.run(
        [PYTHON, "-S", *(["-X", "importtime"] if importtime else []), "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env=os.environ | COLD_ENV | {"PYTHONPATH": f"{packages}{os.pathsep}{functions}"},
        cwd=functions,
    )
    return float(output.stdout.strip().splitlines()[-1]), output.stderr


def init_code(module: str, factory: str) -> str:
    return f"import {module}.app\nfrom loradrop import services\nservices.{factory}()"


def _heaviest_imports(stderr: str, top: int = 6) -> list[tuple[str, float]]:
    """The handler's direct imports by cumulative time (python -X importtime), heaviest first."""
    found = []
    for line in stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \|( +)(\S+)", line)
        if match and len(match.group(2)) == 3:  # one level below the handler module
            found.append((match.group(3), int(match.group(1)) / 1000))
    return sorted(found, key=lambda item: -item[1])[:top]


def bench_cold_start(repeats: int) -> dict[str, Any]:
    stock, shipped = stock_layer(), layer()  # built (when their inputs changed) once, before any run
    with tempfile.TemporaryDirectory() as scratch:
        now, before, bare_layer = (
            code_now(Path(scratch)),
            code_before(Path(scratch)),
            without_bytecode(Path(scratch), stock),
        )
        samples: dict[str, list[float]] = {"baseline": []}
        ratios: dict[str, list[float]] = {}  # each run over the baseline run just before it

        def measure(name: str, code: str, functions: Path, packages: Path = shipped) -> None:
            seconds = _cold(code, functions, packages)[0]
            samples.setdefault(name, []).append(seconds)
            ratios.setdefault(name, []).append(seconds / samples["baseline"][-1])

        for _ in range(repeats):
            for module, factory in FACTORIES.items():
                samples["baseline"].append(_cold(BASELINE, now, stock)[0])
                if module == "submit_training":
                    measure("baseline:shipped", BASELINE, now)
                measure(module, init_code(module, factory), now)
                measure(f"{module}:dependencies", dependencies(module), now)
                if before is not None and (before / module).exists():  # a handler added since has no "before"
                    measure(f"{module}:before", init_code(module, factory), before, bare_layer)
        rows: dict[str, Any] = {name: median(values) for name, values in samples.items()}
        rows["ratios"] = {name: median(values) for name, values in ratios.items()}
        rows["ratio_range"] = {name: (min(values), max(values)) for name, values in ratios.items()}
        rows["samples"] = samples  # every run's CPU seconds, in the order they ran, for anyone who doubts a median
        rows["before_ref"] = BEFORE_REF if before is not None else None
        rows["imports"] = {
            module: _heaviest_imports(_cold(init_code(module, factory), now, shipped, importtime=True)[1])
            for module, factory in FACTORIES.items()
        }
        try:
            tracer = [
                _cold("from aws_lambda_powertools import Tracer\nTracer()", now, shipped)[0] for _ in range(repeats)
            ]
            rows["tracer"] = median(tracer)
        except subprocess.CalledProcessError:
            rows["tracer"] = None  # the X-Ray SDK is not in the layer
    for module in FACTORIES:
        print(
            f"  cold start {module}: {rows[module] * 1000:.0f} ms, before {rows.get(f'{module}:before', 0) * 1000:.0f}"
            f" ms, its dependencies alone {rows[f'{module}:dependencies'] * 1000:.0f} ms"
            f" (baseline {rows['baseline'] * 1000:.0f} ms): {rows['ratios'][module]:.2f}x",
            flush=True,
        )
    return rows


def deployment_sizes() -> dict[str, int]:
    build = ROOT / ".aws-sam" / "build"
    sizes: dict[str, int] = {}
    if build.exists():
        for folder in sorted(p for p in build.iterdir() if p.is_dir()):
            sizes[folder.name] = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    return sizes
