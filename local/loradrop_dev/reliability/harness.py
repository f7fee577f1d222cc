"""What the scenarios stand on: a local stack set up for them, uploads tracked to their end, and
each scenario's outcome judged as a user would judge it."""

from __future__ import annotations

import hashlib
import json
import re
import statistics
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from loradrop.events import SAMPLES_READY
from loradrop.job import Job
from loradrop.models import JobStatus
from loradrop_dev.reliability.sample_counts import asked_for_samples, count_samples
from loradrop_local.aws.events import scheduled_event
from loradrop_local.aws.stack import LocalStack, StackOptions
from loradrop_local.dataset import training_zip
from loradrop_local.simulator.model import SimulatorConfig

TERMINAL = {"COMPLETED", "FAILED", "REJECTED"}
Scale = dict[str, int]  # how big a run is: uploads, webhooks, tasks in a crowded history, ...


def settle_requests(job: dict[str, Any]) -> list[int]:
    """The WaveSpeed requests each of the job's settled submissions took, as its history notes record them."""
    notes = [str(entry.get("note", "")) for entry in job.get("history", [])]
    return [int(match) for note in notes for match in re.findall(r"\((\d+) WaveSpeed requests\)", note)]


def times_entered(job: dict[str, Any], status: str) -> int:
    """How often the job moved into `status` from another state. Entries within a state (a failed copy
    try's note, a re-queue) do not count."""
    statuses = [entry["status"] for entry in job.get("history", [])]
    return sum(1 for before, now in zip([None, *statuses], statuses, strict=False) if now == status != before)


def at_rest(job: dict[str, Any]) -> bool:
    """Terminal and, if it completed asking for samples, with every sample ended: nothing of it moves any more."""
    if job.get("status") not in TERMINAL:
        return False
    return job["status"] != "COMPLETED" or not asked_for_samples(job) or bool(job.get("samples_settled_at"))


@dataclass
class Outcome:
    scenario: str
    injected: str
    uploads: int
    end_states: dict[str, int] = field(default_factory=dict)
    posts: int = 0
    tasks: int = 0
    attempts: int = 0
    objects_ok: int = 0
    orphan_uploads: int = 0
    seconds_median: float = 0.0
    seconds_max: float = 0.0
    end_events: int = 0  # distinct end events published for these jobs (a retried job has one per end)
    event_repeats: int = 0  # deliveries of an end event beyond its first (the stream is at least once)
    settle_requests: list[int] = field(default_factory=list)  # WaveSpeed requests each settled submission took
    sample_jobs: int = 0  # uploads that asked for sample images
    sample_tasks: int = 0  # inference tasks WaveSpeed created for their samples
    sample_attempts: int = 0  # what their sample rows count
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems


@dataclass
class Tracked:
    key: str
    job_id: str
    started: float
    ended: float | None = None
    job: dict[str, Any] | None = None


class Harness:
    """Upload, wait, and check outcomes on one running local stack."""

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        assert stack.simulator is not None
        self.sim = stack.simulator
        self.events: dict[str, list[dict[str, Any]]] = {}  # job id → its end events, every delivery

    def end_events(self, tracked: list[Tracked], timeout: float = 20.0) -> dict[str, list[dict[str, Any]]]:
        """Each ended job's events, waiting (up to `timeout`) until every one has the event of its end."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self.stack.drain_events():
                self.events.setdefault(event["detail"]["job_id"], []).append(event)
            missing = [t for t in tracked if t.job and t.job.get("status") in TERMINAL and not self._announced(t.job)]
            if not missing or time.monotonic() > deadline:
                return {t.job_id: self.events.get(t.job_id, []) for t in tracked}
            time.sleep(0.1)

    def _announced(self, job: dict[str, Any]) -> bool:
        """Whether the event of the job's current end has arrived (its id names the job, the state and when the
        job moved into it: a note written on the ended job later is no new end)."""
        status = JobStatus(job["status"])
        ended = f"{job['job_id']}/{status.value}/{Job.model_validate(job).entered(status)}"
        return any(e["detail"].get("event_id") == ended for e in self.events.get(job["job_id"], []))

    def upload(self, label: str, count: int, metadata: dict[str, str] | None = None) -> list[Tracked]:
        body = training_zip(images=4)

        def one(i: int) -> Tracked:
            key = f"uploads/{label}-{uuid.uuid4().hex[:8]}-{i}.zip"
            started = time.monotonic()
            return Tracked(key, self.stack.upload(key, body, metadata), started)

        with ThreadPoolExecutor(max_workers=16) as pool:
            return list(pool.map(one, range(count)))

    def upload_bytes(self, label: str, data: bytes) -> list[Tracked]:
        """One upload of exactly these bytes (a hostile archive, say)."""
        key = f"uploads/{label}-{uuid.uuid4().hex[:8]}.zip"
        return [Tracked(key, self.stack.upload(key, data), time.monotonic())]

    def wait(self, tracked: list[Tracked], timeout: float, statuses: set[str] = TERMINAL) -> None:
        deadline = time.monotonic() + timeout
        pending = {item.job_id: item for item in tracked}
        while pending and time.monotonic() < deadline:
            # One query of the status index per state a round, then a read of each job that got there:
            # a GetItem per pending job and round would keep moto busy at hundreds of uploads.
            for job_id in self.job_ids_in(statuses) & set(pending):
                job = self.stack.job(job_id)
                if job is not None and job["status"] in statuses:
                    item = pending.pop(job_id)
                    item.job, item.ended = job, time.monotonic()
            time.sleep(0.05 if len(pending) < 20 else 0.5)
        for item in pending.values():
            item.job = self.stack.job(item.job_id)

    def job_ids_in(self, statuses: set[str]) -> set[str]:
        """The ids of every job in these states, from the table's status index (keys only)."""
        dynamodb, found = self.stack.client("dynamodb"), set()
        for status in statuses:
            pages = dynamodb.get_paginator("query").paginate(
                TableName=self.stack.table_name,
                IndexName="by-status",
                KeyConditionExpression="#s = :s",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":s": {"S": status}},
            )
            found |= {item["job_id"]["S"] for page in pages for item in page.get("Items", [])}
        return found

    def posts(self, tracked: list[Tracked]) -> int:
        """Training POSTs WaveSpeed received for these uploads (429s and other refusals included)."""
        names = [t.key.split("/", 1)[1] for t in tracked]
        return sum(
            1
            for r in self.sim.submissions()
            if isinstance(r.body, dict) and any(n in str(r.body.get("data")) for n in names)
        )

    def tasks_created(self, tracked: list[Tracked]) -> int:
        """Tasks WaveSpeed created (and would bill) for these uploads."""
        names = [t.key.split("/", 1)[1] for t in tracked]
        return sum(1 for task in list(self.sim.tasks.values()) if any(n in str(task.input.get("data")) for n in names))

    def downloads(self, task_id: str) -> int:
        return sum(1 for r in self.sim.requests if r.method == "GET" and r.path.startswith(f"/outputs/{task_id}/"))

    def outcome(  # noqa: PLR0913 - what a scenario expects, by name
        self,
        scenario: str,
        injected: str,
        tracked: list[Tracked],
        *,
        expect: dict[str, int],
        tasks: int,
        samples: int | None = None,
    ) -> Outcome:
        """The scenario judged: `tasks` training tasks expected, `samples` inference tasks (None: no samples expected;
        otherwise every upload that asked for samples must end COMPLETED with them settled)."""
        states = Counter((t.job or {}).get("status", "MISSING") for t in tracked)
        durations = [t.ended - t.started for t in tracked if t.ended is not None]
        result = Outcome(
            scenario=scenario,
            injected=injected,
            uploads=len(tracked),
            end_states=dict(states),
            posts=self.posts(tracked),
            tasks=self.tasks_created(tracked),
            seconds_median=round(statistics.median(durations), 2) if durations else 0.0,
            seconds_max=round(max(durations), 2) if durations else 0.0,
        )
        result.attempts = sum(int((t.job or {}).get("attempts", 0)) for t in tracked)
        left = {state: n for state, n in states.items() if state not in TERMINAL}
        if left:
            result.problems.append(f"uploads left non-terminal: {left}")
        if dict(states) != expect:
            errors = sorted({str((t.job or {}).get("error")) for t in tracked if (t.job or {}).get("error")})
            result.problems.append(f"end states {dict(states)} != expected {expect}; errors: {errors}")
        if result.tasks != tasks:
            result.problems.append(f"WaveSpeed created {result.tasks} tasks, expected {tasks}")
        if result.tasks != result.attempts:
            result.problems.append(f"WaveSpeed created {result.tasks} tasks but the jobs count {result.attempts}")
        s3 = self.stack.client("s3")
        for item in tracked:
            job = item.job or {}
            if job.get("status") == "COMPLETED":
                bucket, key = job["weights_uri"].removeprefix("s3://").split("/", 1)
                digest = hashlib.sha256(s3.get_object(Bucket=bucket, Key=key)["Body"].read()).hexdigest()
                if digest == job["weights_sha256"] == self.sim.expected_output(job["prediction_id"])[1]:
                    result.objects_ok += 1
                else:
                    result.problems.append(f"{item.job_id}: checksum mismatch")
        uploads = s3.list_multipart_uploads(Bucket=self.stack.weights_bucket).get("Uploads", [])
        result.orphan_uploads = len(uploads)
        if uploads:
            result.problems.append(f"{len(uploads)} orphan multipart uploads")
        self._judge_events(tracked, result)
        counted = count_samples(self.stack, [t.job or {} for t in tracked], samples)
        result.sample_jobs, result.sample_tasks, result.sample_attempts = counted.jobs, counted.tasks, counted.attempts
        result.problems += counted.problems
        result.settle_requests = [n for t in tracked for n in settle_requests(t.job or {})]
        return result

    def _judge_events(self, tracked: list[Tracked], result: Outcome) -> None:
        """Every ended job's end event was published (at least once), whatever crashed on the way."""
        events = self.end_events(tracked)
        for item in tracked:
            job = item.job or {}
            # A "Samples Ready" event is no end: the job ended before its samples were rendered.
            delivered = [
                e["detail"].get("event_id") for e in events[item.job_id] if e.get("detail-type") != SAMPLES_READY
            ]
            result.end_events += len(set(delivered))
            result.event_repeats += len(delivered) - len(set(delivered))
            if job.get("status") in TERMINAL and not self._announced(job):
                result.problems.append(f"{item.job_id} ended {job['status']} but its event was not published")

    def reconcile(self) -> dict[str, Any]:
        summary: dict[str, Any] = self.stack.invoke("ReconcileJobsFunction", scheduled_event())["summary"]
        return summary

    @property
    def settle_deadline(self) -> float:
        """The stack's settle deadline (compressed), in seconds: what an unsettled job may take to end."""
        return float(self.stack.function_environment("ReconcileJobsFunction")["SETTLE_DEADLINE_SECONDS"])

    @staticmethod
    def wait_until(condition: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.05)

    def settle(self, tracked: list[Tracked], timeout: float, every: float = 0.5, *, reconciling: bool = True) -> None:
        """Until every upload is terminal and the samples of each that completed have all ended, running the
        reconciler meanwhile (as its schedule would) unless `reconciling` is off: what must settle on its own."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.wait(tracked, timeout=every)
            if all(at_rest(t.job or {}) for t in tracked):
                return
            if reconciling:
                self.reconcile()
            else:
                time.sleep(0.2)  # every upload may be terminal already (waiting for its samples): wait returned at once
        self.wait(tracked, timeout=0)

    def upload_with(
        self, label: str, faults: list[tuple[Any, Any]], metadata: dict[str, str] | None = None
    ) -> list[Tracked]:
        """One upload, with faults queued just for it (each (queue, value)); waits until WaveSpeed has
        answered (or dropped) a POST of it other than a 429, so the next upload cannot take these faults."""
        for queue, value in faults:
            queue.append(value)
        tracked = self.upload(label, 1, metadata)
        deadline = time.monotonic() + 30
        while not any(r.status != 429 for r in self.submissions(tracked[0])) and time.monotonic() < deadline:
            time.sleep(0.05)
        return tracked

    def submissions(self, item: Tracked) -> list[Any]:
        name = item.key.split("/", 1)[1]
        return [r for r in list(self.sim.submissions()) if isinstance(r.body, dict) and name in str(r.body.get("data"))]

    def posts_for(self, item: Tracked) -> int:
        return len(self.submissions(item))

    def post_webhook(self, task: Any) -> int:
        body = json.dumps(task.public(self.sim.url)).encode()
        ts = str(int(time.time()))
        headers = {
            "content-type": "application/json",
            "webhook-id": task.id,
            "webhook-timestamp": ts,
            "webhook-signature": self.sim.sign(task.id, ts, body),
        }
        return httpx.post(self.stack.webhook_url, content=body, headers=headers, timeout=30).status_code


@contextmanager
def simulator_settings(harness: Harness, **changes: Any) -> Iterator[None]:
    saved = {name: getattr(harness.sim.config, name) for name in changes}
    for name, value in changes.items():
        setattr(harness.sim.config, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(harness.sim.config, name, value)


# What every stack that runs the scenarios needs (the test stack too): a 1 s submit timeout, a 2 s
# grace before the history counts as proof and absence confirmed 1 s later, a 20 s settle deadline (10 s
# was too short for a lost POST to be proven lost on a loaded 2-core machine, with each submission now also
# priced and its captions read), and a 6 s StoreWeights timeout so that a dead copy's lease runs out within a
# scenario.
SCENARIO_ENVIRONMENT = {
    "SUBMIT_TIMEOUT_SECONDS": "1",
    "WEIGHTS_PART_SIZE_MIB": "5",
    "UNCERTAIN_GRACE_SECONDS": "2",
    "ABSENCE_CONFIRM_SECONDS": "1",
    "SETTLE_DEADLINE_SECONDS": "20",
    "MAX_WEIGHTS_MIB": "64",
}
SCENARIO_TIMEOUTS = {"StoreWeightsFunction": 6.0}


# At full scale a crowded history holds 3,000 other tasks: checking each (a DynamoDB lookup and a GET, both over
# HTTP on this machine) takes a couple of minutes, longer than the fast scale's compressed day (in AWS, minutes
# of a real day).
FULL_SCALE_ENVIRONMENT = {"SETTLE_DEADLINE_SECONDS": "240"}


def reliability_options(full: bool = False) -> StackOptions:
    return StackOptions(
        run_reconciler=False,
        reconcile_after=0,
        simulator=SimulatorConfig(output_size=2 * 1024 * 1024 + 17, webhook_backoff=0.05),
        extra_environment=SCENARIO_ENVIRONMENT | (FULL_SCALE_ENVIRONMENT if full else {}),
        function_timeouts=dict(SCENARIO_TIMEOUTS),
        log_file=Path(tempfile.gettempdir()) / "loradrop-reliability-handlers.log",
    )
