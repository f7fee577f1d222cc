"""Every failure that tells the user to run `loradrop retry` can be retried, and says which kind of retry."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from loradrop.models import Task, describe_failure, retry_kind
from loradrop.pricing import WAITS

DOMAIN = Path(__file__).resolve().parents[2] / "functions" / "loradrop"
CODE = re.compile(r"^[A-Z][A-Z_]+$")


def _text(node: ast.expr) -> str:
    """A string literal or f-string's literal parts."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(_text(part) for part in node.values if isinstance(part, ast.Constant))
    return ""


def _code(node: ast.expr) -> str:
    """An error code: `ErrorCode.NAME` (or a literal code, which the enum's test says there are none of)."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "ErrorCode":
        return node.attr
    if isinstance(node, ast.Constant) and CODE.match(str(node.value)):
        return str(node.value)
    return ""


def codes_whose_message_says_retry() -> set[str]:
    """Error codes passed beside a message that mentions `loradrop retry`, in any call of the domain package
    (JobStore.end, a use case's _fail/_end, ...) or a (code, message) pair a helper returns for one."""
    found = set()
    for module in DOMAIN.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.Call):
                args = [*node.args, *(keyword.value for keyword in node.keywords)]
            elif isinstance(node, ast.Tuple):
                args = list(node.elts)
            else:
                continue
            if any("loradrop retry" in _text(arg) for arg in args):
                found |= {_code(arg) for arg in args if _code(arg)}
    return found


def test_the_scan_finds_the_messages_it_is_about() -> None:
    assert {"NOT_SUBMITTED", "TASK_GONE", "SUBMIT_FAILED", "STORE_FAILED", "STORE_TIMEOUT"} <= (
        codes_whose_message_says_retry()
    )


@pytest.mark.parametrize("code", sorted(codes_whose_message_says_retry()))
def test_every_failure_that_says_retry_can_be_retried(code: str) -> None:
    assert retry_kind(code) is not None


@pytest.mark.parametrize(
    ("status", "code"),
    [("failed", 5003), ("failed", 5000), ("failed", 1402), ("timeout", None), ("cancelled", None), ("deleted", None)],
)
def test_every_wavespeed_failure_whose_hint_says_retry_can_be_retried(status: str, code: int | None) -> None:
    task = Task(id="t", status=status, code=code)
    assert "loradrop retry" in describe_failure(task)
    assert retry_kind(str(code) if code is not None else status.upper()) == "submit"


@pytest.mark.parametrize("code", sorted(WAITS))
def test_a_job_that_waited_too_long_for_a_price_or_the_balance_can_be_retried(code: str) -> None:
    assert retry_kind(code) == "submit"


def test_a_refused_output_host_is_retried_as_a_copy_once_the_hosts_are_fixed() -> None:
    assert retry_kind("OUTPUT_REFUSED") == "store"
