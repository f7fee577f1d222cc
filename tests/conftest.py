"""Shared test helpers: events from events/ (the same files `sam local invoke` uses)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

EVENTS = Path(__file__).resolve().parents[1] / "events"

# Handlers read these at first use; unit tests that build services get harmless values.
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "loradrop")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "loradrop")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


def load_event(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return data
