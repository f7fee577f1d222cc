"""The domain package's map tells the truth, and handlers stay thin."""

from __future__ import annotations

from pathlib import Path

import pytest

import loradrop

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"
HANDLERS = sorted(path.parent.name for path in FUNCTIONS.glob("*/app.py"))


def test_the_package_docstring_names_every_module() -> None:
    modules = {path.stem for path in (FUNCTIONS / "loradrop").glob("*.py")} - {"__init__"}
    assert loradrop.__doc__ is not None
    unnamed = sorted(module for module in modules if f"`{module}`" not in loradrop.__doc__)
    assert unnamed == []


def test_there_are_five_handlers() -> None:
    assert HANDLERS == ["publish_events", "receive_webhook", "reconcile_jobs", "store_weights", "submit_training"]


@pytest.mark.parametrize("handler", HANDLERS)
def test_each_handler_is_under_forty_lines(handler: str) -> None:
    assert len((FUNCTIONS / handler / "app.py").read_text().splitlines()) < 40
