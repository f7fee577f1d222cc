"""One table says which moves a job may make: the store refuses the rest, the README draws it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from loradrop.jobs import Job, JobStore
from loradrop.models import ALLOWED_MOVES, TERMINAL_STATUSES, IllegalMove, JobStatus, check_move, state_diagram
from tests.unit.tables import create_jobs_table

README = Path(__file__).resolve().parents[2] / "README.md"
PAIRS = [(a, b) for a in JobStatus for b in JobStatus]


def test_the_readme_draws_the_table() -> None:
    (drawn,) = re.findall(r"```mermaid\n(.*?)\n```", README.read_text(), flags=re.DOTALL)
    assert drawn == state_diagram()


def test_terminal_states_end_and_every_other_state_can_end() -> None:
    for status in JobStatus:
        if status in TERMINAL_STATUSES - {JobStatus.FAILED}:
            assert ALLOWED_MOVES[status] == frozenset()
        elif status is not JobStatus.FAILED:
            assert ALLOWED_MOVES[status] & TERMINAL_STATUSES, status


@pytest.mark.parametrize(("source", "target"), PAIRS, ids=[f"{a.value}-{b.value}" for a, b in PAIRS])
def test_check_move_follows_the_table(source: JobStatus, target: JobStatus) -> None:
    if target in ALLOWED_MOVES[source]:
        check_move({source}, target)
    else:
        with pytest.raises(IllegalMove, match=f"from {source.value} to {target.value}"):
            check_move({source}, target)


@pytest.fixture
def store() -> Any:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_jobs_table(client)
        yield JobStore(client, "jobs")


def test_the_store_refuses_an_illegal_move_before_writing(store: JobStore) -> None:
    now = "2026-11-25T10:00:00.000Z"
    job = Job(
        job_id="ana-1",
        status=JobStatus.COMPLETED,
        source_bucket="b",
        source_key="uploads/ana.zip",
        created_at=now,
        updated_at=now,
    )
    store.claim(job)
    with pytest.raises(IllegalMove):
        store.transition("ana-1", {JobStatus.COMPLETED}, JobStatus.RECEIVED)
    unchanged = store.get("ana-1")
    assert unchanged is not None
    assert unchanged.status is JobStatus.COMPLETED
    assert unchanged.history == job.history
