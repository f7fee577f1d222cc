"""Leaves botocore in the built layer with the data of the services in aws-services.txt alone (the Makefile
runs it). A first client in a process pays for all of botocore's data, whatever it is for:
- it lists every model directory (440 of them, 26 MB of the layer): the others go;
- it parses endpoints.json, 1.2 MB with an entry for every service in every partition, into OrderedDicts
  (~20 ms of each cold start): each partition keeps the listed services' entries, unchanged."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path


def listed(services_file: Path) -> set[str]:
    return {line.split("#")[0].strip() for line in services_file.read_text().splitlines()} - {""}


def prune(data: Path, services: set[str]) -> None:
    missing = services - {entry.name for entry in data.iterdir() if entry.is_dir()}
    if missing:
        sys.exit(f"aws-services.txt lists {', '.join(sorted(missing))}: botocore has no model of that name")
    for entry in data.iterdir():
        if entry.is_dir() and entry.name not in services:
            shutil.rmtree(entry)
    endpoints = data / "endpoints.json"
    table = json.loads(endpoints.read_text())
    for partition in table["partitions"]:
        partition["services"] = {name: entry for name, entry in partition["services"].items() if name in services}
    endpoints.write_text(json.dumps(table, indent=1))


if __name__ == "__main__":
    prune(Path(sys.argv[1]), listed(Path(sys.argv[2])))
