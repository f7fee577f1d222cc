"""The benchmark's figures as SVG charts beside docs/benchmarks.md (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loradrop_dev.bench.cold_start import FACTORIES
from loradrop_dev.bench.processes import MIB

OURS, BASELINE, NAIVE, BEFORE = "#2b6cb0", "#718096", "#dd6b20", "#c53030"


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.hashsalt": "loradrop", "font.size": 10, "axes.spines.top": False})
    plt.rcParams["axes.spines.right"] = False
    return plt


def _save(figure: Any, name: str, directory: Path) -> str:
    """Write the chart into `directory` (docs/charts beside the report); return its path from the report."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.svg"
    # No timestamps or random ids in the file: a re-run with the same figures writes the same bytes.
    figure.savefig(path, format="svg", bbox_inches="tight", metadata={"Date": None})
    _plt().close(figure)
    return f"{directory.name}/{name}.svg"


def _bytes_read_chart(  # noqa: PLR0913, PLR0917 - one chart's data, labels and file
    x: list[float], rows: list[dict[str, Any]], ours: str, xlabel: str, title: str, name: str, directory: Path
) -> str:
    """Bytes loradrop read against the naive download's, on log scales."""
    plt = _plt()
    figure, axis = plt.subplots(figsize=(6, 3.4))
    axis.loglog(x, [row["bytes_read"] for row in rows], "o-", color=OURS, label=f"loradrop: {ours}")
    axis.loglog(x, [row["naive_bytes"] for row in rows], "s--", color=NAIVE, label="naive: download the ZIP")
    axis.set_xlabel(xlabel)
    axis.set_ylabel("bytes read")
    axis.set_title(title)
    axis.legend()
    return _save(figure, name, directory)


def inspection_chart(rows: list[dict[str, Any]], directory: Path) -> str:
    sizes = [row["size"] / MIB for row in rows]
    title = "ZIP inspection: bytes read vs archive size"
    return _bytes_read_chart(sizes, rows, "range reads", "archive size (MiB)", title, "inspection-bytes", directory)


def transfer_chart(transfers: list[Any], directory: Path) -> str:
    plt = _plt()
    figure, (speed, memory) = plt.subplots(1, 2, figsize=(9, 3.4))
    colours = {"loradrop": OURS, "upload_file": BASELINE, "naive": NAIVE}
    for method, colour in colours.items():
        mine = [t for t in transfers if t.method == method]
        sizes = [t.size / MIB for t in mine]
        speed.plot(sizes, [t.size / MIB / t.seconds for t in mine], "o-", color=colour, label=method)
        memory.plot(sizes, [t.peak_rss / MIB for t in mine], "o-", color=colour, label=method)
    speed.set_xlabel("weights size (MiB)")
    speed.set_ylabel("MiB/s")
    speed.set_title("throughput")
    memory.set_xlabel("weights size (MiB)")
    memory.set_ylabel("peak RSS (MiB)")
    memory.set_title("memory of the copying process")
    memory.set_ylim(bottom=0)
    speed.legend()
    return _save(figure, "transfer", directory)


def cold_start_chart(cold: dict[str, Any], directory: Path) -> str:
    plt = _plt()
    figure, axis = plt.subplots(figsize=(7, 3.4))
    handlers = [h for h in FACTORIES if h in cold]
    positions = range(len(handlers))
    before = [cold.get(f"{h}:before", 0) * 1000 for h in handlers]
    now = [cold[h] * 1000 for h in handlers]
    alone = [cold.get(f"{h}:dependencies", 0) * 1000 for h in handlers]
    axis.bar([p - 0.27 for p in positions], before, 0.27, color=BEFORE, label="before (as sam build shipped it)")
    axis.bar(list(positions), now, 0.27, color=OURS, label="now")
    axis.bar([p + 0.27 for p in positions], alone, 0.27, color=BASELINE, alpha=0.45, label="its dependencies alone")
    axis.axhline(cold["baseline"] * 1000, color=BASELINE, linestyle="--", label="import boto3 + an S3 client")
    axis.axhline(cold["baseline"] * 1500, color=BASELINE, linestyle=":", label="target: 1.5x that")
    axis.set_xticks(list(positions), handlers)
    axis.set_ylabel("init (ms of CPU)")
    axis.set_title("cold start per handler")
    axis.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, frameon=False)
    return _save(figure, "cold-start", directory)


def dataset_chart(rows: list[dict[str, Any]], directory: Path) -> str:
    counts = [float(row["images"]) for row in rows]
    title = "dataset survey: bytes read vs image count"
    return _bytes_read_chart(counts, rows, "first bytes", "images", title, "dataset-bytes", directory)
