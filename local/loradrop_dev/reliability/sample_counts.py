"""The sample images' side of judging a scenario (`loradrop.samples`): the inference tasks WaveSpeed created for the
tracked jobs' samples against the attempts their sample rows count, at most one task per prompt, and, where the
scenario expects samples, every job that asked for them COMPLETED with its samples settled.

A job's inference tasks are found in the simulator by their seeds (`samples.seed_for`: unique per job, prompt and
attempt, an attempt after a POST proven lost having its own) and the inference model: their input has no upload name
to find them by, as training tasks have."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from loradrop.job import Job
from loradrop.jobs import JobStore
from loradrop.samples import SAMPLE_MODEL, Sample, seed_for
from loradrop_local.aws.stack import LocalStack
from loradrop_local.simulator.model import Task


@dataclass
class SampleCount:
    jobs: int = 0  # tracked jobs that asked for samples
    tasks: int = 0  # inference tasks WaveSpeed created for them (and would bill)
    attempts: int = 0  # what their sample rows count
    problems: list[str] = field(default_factory=list)


def asked_for_samples(job: dict[str, Any]) -> bool:
    return bool((job.get("params") or {}).get("sample_prompts"))


def sample_rows(stack: LocalStack, job: dict[str, Any]) -> list[Sample | None]:
    """The job's sample rows, one per prompt (None: no row, as for a job that never stored its weights)."""
    return JobStore(stack.client("dynamodb"), stack.table_name).samples_of(Job.model_validate(job))


def attempt_seeds(row: Sample) -> set[int]:
    """The seed of each of the sample's attempts (one more after each POST proven lost)."""
    return {seed_for(row.parent_job_id, row.index, attempt) for attempt in range(row.lost_submissions + 1)}


def inference_tasks(stack: LocalStack, seeds: set[int]) -> list[Task]:
    assert stack.simulator is not None
    return [t for t in list(stack.simulator.tasks.values()) if t.model == SAMPLE_MODEL and t.input.get("seed") in seeds]


def count_samples(stack: LocalStack, jobs: list[dict[str, Any]], expected: int | None) -> SampleCount:
    """The tracked jobs' samples counted and judged; `expected`: the inference tasks the scenario expects (None: it
    expects no samples, and then only the counts are judged)."""
    count = SampleCount()
    for job in filter(asked_for_samples, jobs):
        count.jobs += 1
        rows = sample_rows(stack, job)
        seeds = {seed for row in rows if row is not None for seed in attempt_seeds(row)}
        per_seed = Counter(task.input["seed"] for task in inference_tasks(stack, seeds))
        count.tasks += sum(per_seed.values())
        count.attempts += sum(row.attempts for row in rows if row is not None)
        for row in filter(None, rows):
            for seed in attempt_seeds(row):
                if per_seed[seed] > 1:
                    count.problems.append(f"{job['job_id']}: prompt {row.index} has {per_seed[seed]} inference tasks")
        if job.get("status") == "COMPLETED" and None in rows:
            count.problems.append(f"{job['job_id']} completed without a row for each of its sample prompts")
        if expected is not None and not (job.get("status") == "COMPLETED" and job.get("samples_settled_at")):
            count.problems.append(f"{job['job_id']} ended {job.get('status')} without its samples settled")
    if count.tasks != count.attempts:
        count.problems.append(f"WaveSpeed created {count.tasks} inference tasks but the samples count {count.attempts}")
    if expected is not None and count.tasks != expected:
        count.problems.append(f"WaveSpeed created {count.tasks} inference tasks, expected {expected}")
    if expected is not None and not count.jobs:
        count.problems.append("no upload asked for samples: the scenario tested none")
    return count
