"""Sample rows beside the jobs (`loradrop.samples`): claimed with a conditional put, moved by the same conditional
move as a job (its parts from `table_moves`), and, once every sample of a job ended, summed up on the job.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from botocore.exceptions import ClientError
from pydantic import ValidationError

from loradrop.budgets import BudgetChange
from loradrop.job import Job
from loradrop.job_table import JobTable
from loradrop.models import IllegalMove
from loradrop.redaction import redact
from loradrop.samples import SAMPLE_MOVES, Sample, SampleStatus, sample_key
from loradrop.table_moves import Condition, build_move, deserialize, serialize

SampleCounter = str  # "lost_submissions" or "store_requeues"


def _sample(item: dict[str, Any] | None) -> Sample | None:
    """A row as a sample, None for no row or one too odd to read (whoever needs it meets the oddity)."""
    try:
        return Sample.model_validate(deserialize(item)) if item else None
    except ValidationError:
        return None


def same_digest(digest: str | None) -> Condition | None:
    """The sample is still on the attempt that was looked at (its input digest)."""
    return Condition("submit_digest = :digest", {":digest": digest}) if digest else None


def same_lost_count(count: int) -> Condition:
    """No POST of the sample was proven lost since it was read (its next attempt would have a seed of its own)."""
    return Condition("lost_submissions = :lost", {":lost": count})


def input_key(digest: str) -> str:
    """The row that remembers which sample sent an input whose task may still turn up (an attempt proven lost, or
    one that never settled)."""
    return f"sample-input#{digest}"


class SampleTable(JobTable):
    def plan_samples(self, job: Job, prompts: list[tuple[str, int]]) -> list[Sample]:
        """A PLANNED row for each (prompt, seed), unless it exists: the rows as stored, in order."""
        now = self.now()
        planned = []
        for index, (prompt, seed) in enumerate(prompts):
            row = Sample(
                job_id=sample_key(job.job_id, index),
                parent_job_id=job.job_id,
                index=index,
                prompt=prompt,
                seed=seed,
                status=SampleStatus.PLANNED,
                created_at=now,
                updated_at=now,
                history=[{"status": SampleStatus.PLANNED.value, "at": now}],
            )
            try:
                self._db.put_item(
                    TableName=self._table,
                    Item=serialize(row.model_dump(mode="python", exclude_none=True)),
                    ConditionExpression="attribute_not_exists(job_id)",
                )
            except ClientError as err:
                if err.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                    raise
                row = self.get_sample(row.job_id) or row
            planned.append(row)
        return planned

    def get_sample(self, key: str) -> Sample | None:
        answer = self._db.get_item(TableName=self._table, Key=serialize({"job_id": key}), ConsistentRead=True)
        return _sample(answer.get("Item"))

    def samples_of(self, job: Job) -> list[Sample | None]:
        """The job's sample rows, one per prompt (None where a row is missing or unreadable)."""
        count = len(job.params.sample_prompts or []) if job.params else 0
        return [self.get_sample(sample_key(job.job_id, index)) for index in range(count)]

    def move_sample(  # noqa: PLR0913 - one conditional write carries every part of a move
        self,
        sample: Sample,
        expected: Collection[SampleStatus],
        to: SampleStatus,
        *,
        note: str | None = None,
        sets: dict[str, Any] | None = None,
        removes: Collection[str] = (),
        attempts: int = 0,
        count: SampleCounter | None = None,
        budget: BudgetChange | None = None,
        condition: Condition | None = None,
    ) -> tuple[Sample | None, bool]:
        """Move a sample to `to` from one of `expected`: (the row after it, True), or, refused, (the row as it
        stands, False). A move SAMPLE_MOVES does not allow raises IllegalMove before anything is written."""
        illegal = sorted(status.value for status in expected if to not in SAMPLE_MOVES[status])
        if illegal:
            raise IllegalMove(f"a sample may not move from {', '.join(illegal)} to {to.value}")
        move = build_move(
            [status.value for status in expected],
            to.value,
            self.now(),
            # (an error can quote WaveSpeed, which can quote the presigned LoRA link)
            fields={k: redact(v) if isinstance(v, str) else v for k, v in (sets or {}).items() if v is not None},
            removes=sorted(removes),
            note=note,
            attempts=attempts,
            count=count,
        )
        expression, allowed, values, names = move.parts(condition)
        done, item = self.write(sample.job_id, expression, allowed, values, names, budget)
        if done and item is None:  # written in a transaction: read it
            return self.get_sample(sample.job_id), True
        return _sample(item), done

    def record_stray(
        self, sample: Sample, task_id: str, note: str, budget: BudgetChange | None, *, counted: bool = True
    ) -> bool:
        """A task of one of the sample's attempts given up on that turned up after all: kept in `stray_tasks` (once),
        whatever the sample's state, and, `counted`, added to `attempts` (and its month, with `budget`)."""
        entry = {"status": sample.status.value, "at": self.now(), "note": redact(note), "prediction_id": task_id}
        values: dict[str, Any] = {":ids": [task_id], ":id": task_id, ":one": 1 if counted else 0, ":zero": 0}
        values |= {":empty": [], ":entry": [entry]}
        expression = (
            "SET stray_tasks = list_append(if_not_exists(stray_tasks, :empty), :ids), "
            "attempts = if_not_exists(attempts, :zero) + :one, "
            "history = list_append(if_not_exists(history, :empty), :entry)"
        )
        condition = "attribute_exists(job_id) AND NOT contains(stray_tasks, :id)"
        done, _ = self.write(sample.job_id, expression, condition, values, None, budget)
        return done

    def remember_input(self, digest: str, key: str) -> None:
        """Which sample sent this input (UpdateItem, which the functions that settle samples may already call)."""
        self.write(
            input_key(digest),
            "SET sample_key = :key",
            "attribute_not_exists(job_id) OR sample_key = :key",
            {":key": key},
        )

    def sample_of_input(self, digest: str) -> Sample | None:
        """The sample remember_input named for this input, if any."""
        answer = self._db.get_item(
            TableName=self._table, Key=serialize({"job_id": input_key(digest)}), ConsistentRead=True
        )
        key = deserialize(answer["Item"]).get("sample_key") if answer.get("Item") else None
        return self.get_sample(str(key)) if key else None

    def settle_samples(self, job: Job, summary: list[dict[str, Any]], at: str) -> bool:
        """Record the samples on their COMPLETED job once every one ended (once: the change stream makes it the
        "Samples Ready" event). The job's `updated_at` stays: its state did not change."""
        try:
            self._db.update_item(
                TableName=self._table,
                Key=serialize({"job_id": job.job_id}),
                UpdateExpression="SET samples = :samples, samples_settled_at = :at",
                ConditionExpression="#status = :completed AND attribute_not_exists(samples_settled_at)",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=serialize({":samples": summary, ":at": at, ":completed": "COMPLETED"}),
            )
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True
