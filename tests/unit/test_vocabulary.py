"""The domain's words are typed: error codes and outcomes come from their enums, DynamoDB's expression
language stays in the job store (the jobs, and the month rows beside them), and what is stored or shown keeps
its exact text."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from loradrop.codes import AFTER_TAKING, ErrorCode, Outcome

DOMAIN = Path(__file__).resolve().parents[2] / "functions"
STORE = {"table_moves.py", "job_table.py", "sample_table.py", "jobs.py", "budgets.py"}
# What DynamoDB's condition and update expressions are made of: functions, comparisons with a placeholder
EXPRESSION = re.compile(r"attribute_(not_)?exists\(|if_not_exists\(|list_append\(|contains\(|[\w#]+ (=|<>|<|>) :\w")


def _literals(skip: set[str]) -> list[tuple[str, str]]:
    found = []
    for module in DOMAIN.rglob("*.py"):
        if module.name in skip:
            continue
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                found.append((f"{module.parent.name}/{module.name}:{node.lineno}", node.value))
    return found


def test_no_error_code_is_spelled_outside_its_enum() -> None:
    codes = {code.value for code in ErrorCode}
    spelled = [(where, text) for where, text in _literals({"codes.py"}) if text in codes]
    assert spelled == []


def test_no_dynamodb_expression_is_written_outside_the_job_store() -> None:
    written = [(where, text) for where, text in _literals(STORE) if EXPRESSION.search(text)]
    assert written == []
    assert any(EXPRESSION.search(text) for _, text in _literals(set()))  # the check sees the store's own


@pytest.mark.parametrize("first", [Outcome.ADOPTED, Outcome.EARLIER_TASK_TAKEN])
@pytest.mark.parametrize("after", AFTER_TAKING)
def test_every_outcome_that_can_follow_taking_a_task_has_its_words(first: Outcome, after: Outcome) -> None:
    assert first.then(after) == f"{first}, {after}"
    assert first.then(Outcome.UNCHANGED) is first


def test_stored_and_shown_words_are_unchanged() -> None:
    """Job items, events and the webhook's answer carry these texts: an enum member may be renamed, never its
    value."""
    assert ErrorCode.SUBMIT_UNSETTLED == "SUBMIT_UNSETTLED"
    assert f"[{ErrorCode.TASK_GONE}]" == "[TASK_GONE]"
    assert Outcome.ADOPTED.then(Outcome.STORING) == "adopted, storing"
    assert Outcome.PROVEN_LOST == "resubmitted (nothing was created)"
