"""3. Cold start in docs/benchmarks.md: the handlers against a bare boto3 client, before and now, the
dependencies alone, where the time went; 3b. the same in Lambda's arm64 container (emulated)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from loradrop_dev.bench.charts import cold_start_chart
from loradrop_dev.bench.cold_start import FACTORIES
from loradrop_dev.bench.processes import MIB


def cold_start_section(data: dict[str, Any], charts: Path) -> list[str]:
    cold = data["cold"]
    ratio = partial(baseline_ratio, cold)
    handlers = [module for module in FACTORIES if module in cold]  # a report of an older run may lack a newer one
    return [
        *_method(data),
        *_table(cold, handlers, ratio),
        "",
        f"![cold start per handler]({cold_start_chart(cold, charts)})",
        "",
        *_where_the_time_went(cold, handlers, ratio),
        "",
        *_not_done(cold),
        "",
        *emulated_section(data.get("emulated"), ratio),
        *_deployment_sizes(data["sizes"]),
        "",
    ]


def baseline_ratio(cold: dict[str, Any], name: str) -> float:
    """The median of each run over the baseline run just before it (older reports: of the medians)."""
    return float(cold.get("ratios", {}).get(name, cold[name] / cold["baseline"]))


def _method(data: dict[str, Any]) -> list[str]:
    cold = data["cold"]
    return [
        "## 3. Cold start",
        "",
        "A fresh process imports the handler module and builds its settings and clients (what Lambda's init",
        "does) with nothing on its path but the dependencies layer (its pins, installed for this machine) and the",
        "function code; CPU time (wall time on this shared machine swings by a third from run to run), median of "
        f"{data['cold_repeats']} runs taking turns. Each ratio is the median of a run's time over that of the",
        "baseline run made just before it, so a slow spell of this shared machine falls on both sides of a ratio.",
        "Lambda's code and layer directories are read-only, so what ships",
        "without bytecode is compiled at every cold start: *before* is the code at "
        f"`{cold.get('before_ref')}` with the layer as SAM's Python builder ships it (no `.pyc` files); *now* is",
        "today's code and the layer `layers/deps/Makefile` builds (bytecode, and botocore's models and endpoints",
        "for the five services in `layers/deps/aws-services.txt` alone), with the bytecode `functions/Makefile`",
        "adds. Baseline:",
        "`import boto3; boto3.client('s3')` with boto3 as pip installs it (bytecode, every model), in the same run"
        + (
            f"; the same two lines on loradrop's layer take {cold['baseline:shipped'] * 1000:.0f} ms, which is what"
            " pruning botocore's data is worth."
            if "baseline:shipped" in cold
            else "."
        ),
        "",
        "*Dependencies alone* is what the handler's init cannot do without, with none of loradrop's code: the",
        "same imports (boto3, pydantic with one model, Powertools' logger, metrics and parameters, httpx, and",
        "zipfile for SubmitTraining) with the collector paused as the handlers pause it, and the same clients",
        "(StoreWeights': S3, DynamoDB and the download client with its TLS context on the layer's hashed",
        "roots; the others' as `services` makes them).",
        "",
    ]


def _table(cold: dict[str, Any], handlers: list[str], ratio: Callable[[str], float]) -> list[str]:
    ranges = cold.get("ratio_range", {})
    lines = [
        "| handler | before (ms CPU) | now (ms CPU) | dependencies alone (ms CPU) | before vs baseline "
        "| now vs baseline | lowest-highest pair | dependencies alone vs baseline | heaviest imports now (ms, wall) |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| baseline | | {cold['baseline'] * 1000:.0f} | | | 1.00x | | | |",
    ]
    for module in handlers:
        before = cold.get(f"{module}:before")
        heaviest = ", ".join(f"{name} {ms:.0f}" for name, ms in cold.get("imports", {}).get(module, [])[:4])
        then = (f"{before * 1000:.0f}", f"{ratio(f'{module}:before'):.2f}x") if before else ("-", "-")
        floor = cold.get(f"{module}:dependencies")
        alone = (f"{floor * 1000:.0f}", f"{ratio(f'{module}:dependencies'):.2f}x") if floor else ("-", "-")
        spread = "{:.2f}-{:.2f}x".format(*ranges[module]) if module in ranges else "-"
        lines.append(
            f"| {module} | {then[0]} | {cold[module] * 1000:.0f} | {alone[0]} | {then[1]} "
            f"| {ratio(module):.2f}x | {spread} | {alone[1]} | {heaviest} |"
        )
    return lines


def _where_the_time_went(cold: dict[str, Any], handlers: list[str], ratio: Callable[[str], float]) -> list[str]:
    worst = max(ratio(m) for m in handlers)
    of_medians = max(cold[m] / cold["baseline"] for m in handlers)
    floors = {m: cold[f"{m}:dependencies"] for m in handlers if cold.get(f"{m}:dependencies")}
    floor_range, own_range, over_floor = "(not measured)", "(not measured)", ""
    if floors:
        ratios_alone = [ratio(f"{m}:dependencies") for m in floors]
        own_ms = [(cold[m] - floors[m]) * 1000 for m in floors]
        floor_range = f"{min(ratios_alone):.2f}x to {max(ratios_alone):.2f}x of the baseline"
        # A handler cannot cost less than its own dependencies: a figure below zero is two medians' noise.
        noise = " (below zero: the noise between two medians)" if min(own_ms) < 0 else ""
        own_range = f"{min(own_ms):.0f} to {max(own_ms):.0f} ms{noise}"
        over = [m for m in floors if ratio(f"{m}:dependencies") > 1.5]
        missed = [m for m in floors if ratio(m) > 1.5]
        if over:
            over_floor = f" {', '.join(over)} exceed{'s' if len(over) == 1 else ''} 1.5x on the dependencies alone."
        elif missed:
            over_floor = (
                f" The dependencies alone stay under 1.5x for every handler; what takes {', '.join(missed)} over is"
                f" loradrop's own code ({', '.join(f'{(cold[m] - floors[m]) * 1000:.0f} ms' for m in missed)})."
            )
    return [
        f"Target ≤ 1.5x for each: {'met' if worst <= 1.5 else 'missed'}, worst {worst:.2f}x (the worst ratio of"
        f" the medians instead: {of_medians:.2f}x; the pairs' spread is the noise of this machine). Where the time"
        " went (`python -X importtime`, per handler) and what changed: bytecode for the layer and the code (the",
        "largest part: a cold start compiled boto3, botocore, pydantic and Powertools from source); a loop of",
        "our own for SQS partial batches (Powertools' BatchProcessor imports asyncio and every event class);",
        "intake messages told apart by hand (a pydantic TypeAdapter for the union took ~15 ms to build); the",
        "webhook's one route read without Powertools' event handler (~35 ms); each function's settings model",
        "built alone, on first use; EventBridge and SQS clients made when first called; one TLS context per",
        "process (each httpx client built its own, ~30 ms), verifying against certifi's roots one per file",
        "under their subject hash (`layers/deps/hash_certificates.py`), so OpenSSL reads only the root a",
        "handshake needs instead of parsing the whole bundle at init (~17 ms); botocore's data for the",
        "services the functions call, no others (its first client lists every model directory, 440 of them",
        "and 26 MB of the layer, and parses endpoints.json, 1.2 MB of entries for every service in every",
        "partition: ~20 ms);",
        "no garbage collection while a handler imports: the imports make ~100k objects that live as long as",
        "the container, and each collection on the way re-scanned them (10-30 ms per handler, side by side); the",
        "handler module freezes them at its end, so no later collection scans them either.",
        "What remains beyond the baseline is mostly the",
        f"dependencies: alone they measure {floor_range}; loradrop's own code (its modules, models and",
        f"settings) adds {own_range} per handler.{over_floor} The target sits close to the dependencies' floor:",
        "a wide margin for every handler in every run would mean leaving one of them (boto3 for bare botocore,",
        "which also means replacing Powertools' parameters and boto3's DynamoDB marshaller; or pydantic), not",
        "more deferral. StoreWeights builds its download client (httpcore, the TLS context) at init, since nearly",
        "every invocation downloads; the other three make their WaveSpeed client when they first call",
        "WaveSpeed, so their first invocation pays that part instead.",
    ]


def _not_done(cold: dict[str, Any]) -> list[str]:
    """SnapStart, and the tracer: what the handlers do not use, and why."""
    tracer = cold.get("tracer")
    return [
        "SnapStart (not offered): with bytecode shipped and no client or secret made at init, a snapshot would",
        "save only the imports, at the price of published versions and aliases for every trigger; and restored",
        "snapshots share the module state taken at publish time, so the secrets cache (Powertools' max_age) and",
        "the HTTP clients' TLS sessions and pooled connections would need re-creating in a restore hook. It",
        "cannot be measured here (no Lambda).",
        "",
        "Tracing: the handlers do not create Powertools' `Tracer` (it imports the X-Ray SDK); the template's",
        "`Tracing: Active` gives Lambda-level traces at no init cost. "
        + (
            f"`Tracer()` alone costs {tracer * 1000:.0f} ms here."
            if tracer
            else "The X-Ray SDK is not in the layer, so `Tracer()` is not measured."
        ),
    ]


def _deployment_sizes(sizes: dict[str, int]) -> list[str]:
    lines = [
        "Deployment sizes (`sam build` output, unzipped):",
        "",
        "| artifact | size |",
        "|---|---|",
    ]
    for name, size in sizes.items():
        lines.append(f"| {name} | {size / MIB:.1f} MiB |")
    if not sizes:
        lines.append("| (run `make build` first) | - |")
    return lines


def emulated_section(emulated: dict[str, Any] | None, native_ratio: Callable[[str], float]) -> list[str]:
    """3b: the build's cold start in the arm64 container `sam local` runs, beside section 3's ratios."""
    lines = ["### 3b. In Lambda's arm64 container (emulated)", ""]
    if not emulated or "skipped" in emulated:
        reason = emulated["skipped"] if emulated else "this report predates it"
        return [*lines, f"Not measured in this run: {reason}.", ""]
    handlers = [m for m in FACTORIES if m in emulated]
    lines += [
        "What `sam build` deploys (each function's directory and the dependencies layer: arm64 wheels, bytecode,",
        "pruned botocore), mounted read-only in the arm64 container `sam local` runs (the stand-in image,",
        "`make sam-image`) under qemu's emulation, beside the same baseline in the same container (boto3 as pip",
        f"installs it). One container, fresh `python3 -S` processes taking turns, CPU time, {emulated['repeats']}"
        " runs each;",
        "each ratio is the median of a run over the baseline run just before it. Emulation slows every process",
        "many times over (the absolute times are qemu's, not Lambda's); the ratio is what carries over, and the",
        "last column is section 3's for the same handler on this machine's native Python.",
        "",
        "| handler | now, arm64 emulated (ms CPU) | baseline there (ms CPU) | vs baseline, emulated "
        "| vs baseline, native (section 3) |",
        "|---|---|---|---|---|",
    ]
    for module in handlers:
        lines.append(
            f"| {module} | {emulated[module] * 1000:.0f} | {emulated[f'{module}:baseline'] * 1000:.0f} "
            f"| {emulated[f'{module}:ratio']:.2f}x | {native_ratio(module):.2f}x |"
        )
    worst = max(emulated[f"{m}:ratio"] for m in handlers)
    verdict = "within" if worst <= 1.5 else "above"
    return [
        *lines,
        "",
        f"Worst emulated ratio {worst:.2f}x: {verdict} the 1.5x target in Lambda's own architecture, on the"
        " artifacts as deployed.",
        "",
    ]
