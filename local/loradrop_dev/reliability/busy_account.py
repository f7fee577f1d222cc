"""Scenarios of a busy, messy account: a crowded history, odd answers from WaveSpeed and proxies, odd rows in
the table, more stale jobs than a run's batch, a retry days after the upload, a malformed weights header,
crashes right after a job's end is written. Each ends every upload terminal with tasks == attempts and every
end published as an event."""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from loradrop_dev.reliability.harness import Harness, Outcome, Scale, Tracked, simulator_settings
from loradrop_local.aws.moto_front import Fault, dynamodb_write_to


@contextmanager
def other_tools_tasks(h: Harness, count: int, seed: int) -> Iterator[list[str]]:
    """`count` tasks other tools made on the same account (the web UI, another app on the key), created over
    the minute around now, each naming its own upload; gone from the simulator afterwards, so the next
    scenario's windows are its own."""
    rng = random.Random(seed)  # test data, not security
    now = datetime.now(UTC)
    ids = []
    for i in range(count):
        task = h.sim.add_task(
            f"other-{uuid.uuid4().hex}",
            created_at=now + timedelta(seconds=rng.uniform(-20, 30)),
            data_url=f"https://other-tool.example/{seed}/{i}.zip",
        )
        ids.append(task.id)
    try:
        yield ids
    finally:
        for task_id in ids:
            h.sim.forget(task_id)


def busy_history(h: Harness, scale: Scale) -> Outcome:
    """Thousands of other tasks in the window: the task is found nearest the POST's start first, and absence
    is proven only after every one of them was checked (over several runs, from the job's cursor)."""
    crowd = scale["crowd"]
    return _crowded(h, "busy", crowd, "busy account's history", f"{crowd:,} other tools' tasks in the minute around")


def history_without_total(h: Harness, scale: Scale) -> Outcome:
    """A history whose answers carry no `total`, from a server that serves 50 entries when asked for 100: a
    task on a later page is still found, and only a page shorter than the one before ends a listing."""
    crowd = scale["crowd"] // 2
    with simulator_settings(h, history_total=False, history_page_cap=50):
        return _crowded(
            h,
            "no-total",
            crowd,
            "history without a total",
            f"history pages without `total`, 50 entries when 100 are asked for; {crowd:,} other tasks around",
        )


def _crowded(h: Harness, label: str, crowd: int, scenario: str, injected: str) -> Outcome:
    """Two uncertain POSTs among `crowd` other tasks: one that created a task whose answer and webhook were
    lost (to be found in the history), one dropped before anything was created (to be proven absent, then sent
    again). Both end COMPLETED with one task each, never a blind second POST."""
    submit, webhook = h.sim.faults.submit, h.sim.faults.webhook
    with other_tools_tasks(h, crowd, seed=sum(label.encode())):
        tracked = h.upload_with(f"{label}-created", [(submit, "drop_after_create"), (webhook, "drop")])
        tracked += h.upload_with(f"{label}-not-created", [(submit, "drop_before_create")])
        h.settle(tracked, timeout=h.settle_deadline + 60)
    result = h.outcome(
        scenario,
        f"{injected} two uncertain POSTs (one created, its answer and webhook lost; one never created)",
        tracked,
        expect={"COMPLETED": 2},
        tasks=2,
    )
    for item, posts in zip(tracked, (1, 2), strict=True):
        if h.posts_for(item) != posts:
            result.problems.append(f"{item.key}: {h.posts_for(item)} POSTs, expected {posts} (never a blind retry)")
    if len(result.settle_requests) != 2:
        result.problems.append(f"settle requests recorded: {result.settle_requests} (one per uncertain POST)")
    return result


def _task_of(h: Harness, item: Tracked, timeout: float = 20) -> str:
    """The WaveSpeed task of an upload, once its job records one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = h.stack.job(item.job_id) or {}
        if job.get("prediction_id"):
            return str(job["prediction_id"])
        time.sleep(0.05)
    raise TimeoutError(f"{item.job_id} recorded no task")


def _wait_task(h: Harness, item: Tracked, status: str, timeout: float = 20) -> str:
    """Wait until the upload's WaveSpeed task is in `status`; its id."""
    task_id = _task_of(h, item, timeout)
    h.wait_until(lambda: getattr(h.sim.tasks.get(task_id), "status", None) == status, timeout)
    return task_id


def proxy_404s(h: Harness, scale: Scale) -> Outcome:
    """Only WaveSpeed's own 404, twice, says a task is gone; a proxy's 404 page never does, and a job whose
    copy holds the lease is never ended under it."""
    webhook, result_faults = h.sim.faults.webhook, h.sim.faults.result
    problems = []
    # 1. A lost webhook, and the result GET answered by a proxy's HTML 404 page for two runs (3 tries each)
    proxied = h.upload_with("proxy-404", [(webhook, "drop")])
    _wait_task(h, proxied[0], "completed")
    result_faults.extend(["proxy_404"] * 6)
    runs = [h.reconcile(), h.reconcile()]
    if (h.stack.job(proxied[0].job_id) or {}).get("status") != "SUBMITTED" or any("failed" in r for r in runs):
        problems.append(f"a proxy's 404 moved the job: {runs}")
    # 2. WaveSpeed deletes a task that is still training: its JSON 404 on two runs a second apart ends the job
    gone = h.upload_with("task-gone", [(webhook, "drop"), (h.sim.faults.held, 1)])
    h.sim.forget(_wait_task(h, gone[0], "processing"))
    first = h.reconcile()
    if (h.stack.job(gone[0].job_id) or {}).get("status") == "FAILED":
        problems.append(f"one 404 ended the job: {first}")
    time.sleep(1.2)  # ABSENCE_CONFIRM_SECONDS, compressed
    h.reconcile()
    # 3. A copy holding its lease while WaveSpeed forgets the task: left to finish, never ended under it
    leased = h.upload_with("lease-held", [(h.sim.faults.download, "slow:0.6")])
    task_id = _task_of(h, leased[0])
    h.wait_until(lambda: h.downloads(task_id) > 0, 20)  # the copy has its URL and is downloading
    h.sim.forget(task_id)
    during = h.reconcile()
    if "copy running" not in during:
        problems.append(f"the reconciler did not leave the running copy alone: {during}")
    time.sleep(1.2)
    h.reconcile()
    tracked = proxied + gone + leased
    h.settle(tracked, timeout=40)
    h.sim.release()
    result = h.outcome(
        "404s: a proxy's, WaveSpeed's, under a copy's lease",
        "result GETs answered by a proxy's HTML 404 page for two runs; a training task WaveSpeed deleted (its "
        "JSON 404 on two runs); a task deleted while its copy holds the lease",
        tracked,
        expect={"COMPLETED": 2, "FAILED": 1},
        tasks=3,
    )
    if (gone[0].job or {}).get("error_code") != "TASK_GONE":
        problems.append(f"the deleted task's job ended {(gone[0].job or {}).get('error_code')}, not TASK_GONE")
    result.problems += problems
    return result


def _put_row(h: Harness, item: dict[str, Any]) -> None:
    h.stack.client("dynamodb").put_item(TableName=h.stack.table_name, Item=item)


def _delete_rows(h: Harness, job_ids: list[str]) -> None:
    dynamodb = h.stack.client("dynamodb")
    for job_id in job_ids:
        dynamodb.delete_item(TableName=h.stack.table_name, Key={"job_id": {"S": job_id}})


def _row(job_id: str, status: str, task: str, **odd: dict[str, Any]) -> dict[str, Any]:
    """A job item as an older version, a person's edit or a bug might leave it (DynamoDB JSON)."""
    at = (datetime.now(UTC) - timedelta(hours=1)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    item = {
        "job_id": {"S": job_id},
        "status": {"S": status},
        "source_bucket": {"S": "uploads"},
        "source_key": {"S": f"uploads/{job_id}.zip"},
        "prediction_id": {"S": task},
        "attempts": {"N": "1"},
        "created_at": {"S": at},
        "updated_at": {"S": at},
        "history": {"L": [{"M": {"status": {"S": status}, "at": {"S": at}}}]},
    }
    return item | odd


def corrupt_items(h: Harness, scale: Scale) -> Outcome:
    """Odd rows in the table among healthy jobs: each is counted and sent to the back, the pass goes on."""
    webhook = h.sim.faults.webhook
    healthy = h.upload_with("odd-neighbour-1", [(webhook, "drop")])
    healthy += h.upload_with("odd-neighbour-2", [(webhook, "drop")])
    held = h.sim.add_task(f"held-{uuid.uuid4().hex}", status="created").id
    suffix = uuid.uuid4().hex[:8]
    odd = {
        f"odd-history-{suffix}": {"history": {"S": "not a list"}},
        f"odd-attempts-{suffix}": {"attempts": {"S": "many"}},
        f"odd-created-{suffix}": {"created_at": {"S": "yesterday"}},
    }
    for job_id, oddity in odd.items():
        _put_row(h, _row(job_id, "SUBMITTED", held) | oddity)
    for item in healthy:
        _wait_task(h, item, "completed")
    first = h.reconcile()
    h.settle(healthy, timeout=30)
    rows = {
        job_id: h.stack.client("dynamodb").get_item(TableName=h.stack.table_name, Key={"job_id": {"S": job_id}})
        for job_id in odd
    }
    _delete_rows(h, list(odd))
    h.sim.forget(held)
    result = h.outcome(
        "odd rows in the table",
        "three job items edited by hand among two lost webhooks: history not a list, attempts not a number, "
        "created_at not a time",
        healthy,
        expect={"COMPLETED": 2},
        tasks=2,
    )
    if first.get("error", 0) < 2 or first.get("storing", 0) < 2:
        result.problems.append(f"first run {first}: both unreadable rows counted, both healthy jobs moved on")
    stale = [job_id for job_id, row in rows.items() if row["Item"].get("checked_at") is None]
    if stale:
        result.problems.append(f"odd rows not sent to the back of their queue: {stale}")
    return result


def stale_backlog(h: Harness, scale: Scale) -> Outcome:
    """More stale jobs than a run's batch (200): the ones a run leaves as they were go to the back, so lost
    webhooks behind them are found within a few runs."""
    count = scale["backlog"]
    queued = h.sim.add_task(f"queued-{uuid.uuid4().hex}", status="created").id  # a task WaveSpeed has not started
    backlog = [f"backlog-{i:04d}-{uuid.uuid4().hex[:6]}" for i in range(count)]
    for job_id in backlog:  # older than anything else: listed first, and left as they are by every check
        _put_row(h, _row(job_id, "SUBMITTED", queued))
    webhook = h.sim.faults.webhook
    tracked = [item for i in range(3) for item in h.upload_with(f"behind-backlog-{i}", [(webhook, "drop")])]
    for item in tracked:
        _wait_task(h, item, "completed")
    runs: list[dict[str, Any]] = []
    while len(runs) < 10 and any((h.stack.job(t.job_id) or {}).get("status") == "SUBMITTED" for t in tracked):
        runs.append(h.reconcile())
    h.settle(tracked, timeout=30)
    _delete_rows(h, backlog)
    h.sim.forget(queued)
    result = h.outcome(
        "more stale jobs than a run's batch",
        f"{count} jobs waiting on a task WaveSpeed has not started, listed first; three lost webhooks behind them",
        tracked,
        expect={"COMPLETED": 3},
        tasks=3,
    )
    needed = -(-(count + 3) // 200)
    if len(runs) > needed:
        result.problems.append(f"the lost webhooks took {len(runs)} runs to be found, expected at most {needed}")
    return result


def retry_after_days(h: Harness, scale: Scale) -> Outcome:
    """`loradrop retry` days after the upload, meeting a 429: the retry carries on when its message comes back,
    and the job's deadline runs from its retry, not its upload."""
    h.sim.faults.task.extend([(5003, "service unavailable"), (5003, "service unavailable")])
    tracked = h.upload("retried-late", 1)
    h.wait(tracked, timeout=30)
    job = tracked[0].job or {}
    problems = [] if job.get("error_code") == "5003" else [f"the job ended {job.get('error_code')}, not 5003"]
    # Days pass: the job's upload and history are three days older than the settle deadline allows
    key = {"job_id": {"S": tracked[0].job_id}}
    item = h.stack.client("dynamodb").get_item(TableName=h.stack.table_name, Key=key)["Item"]
    for entry in item["history"]["L"]:
        entry["M"]["at"]["S"] = _earlier(entry["M"]["at"]["S"], timedelta(days=3))
    h.stack.client("dynamodb").update_item(
        TableName=h.stack.table_name,
        Key=key,
        UpdateExpression="SET created_at = :c, history = :h",
        ExpressionAttributeValues={":c": {"S": _earlier(job["created_at"], timedelta(days=3))}, ":h": item["history"]},
    )
    h.sim.faults.submit.append("429")
    retry = json.dumps({"job_id": tracked[0].job_id, "action": "retry"})
    h.stack.client("sqs").send_message(QueueUrl=h.stack.queue_urls["IntakeQueue"], MessageBody=retry)
    h.wait_until(lambda: any(r.status == 429 for r in h.submissions(tracked[0])), 20)
    ran = h.reconcile()
    for item in tracked:
        item.job = None
    h.wait(tracked, timeout=60)
    result = h.outcome(
        "a retry days after the upload",
        "FAILED 5003 twice; three days later `loradrop retry`, whose POST meets a 429",
        tracked,
        expect={"COMPLETED": 1},
        tasks=3,
    )
    if "failed" in ran:
        problems.append(f"the reconciler ended the retried job for its upload's age: {ran}")
    result.problems += problems
    return result


def _earlier(at: str, span: timedelta) -> str:
    moment = datetime.fromisoformat(at.replace("Z", "+00:00")) - span
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def malformed_header(h: Harness, scale: Scale) -> Outcome:
    """Weights whose safetensors header is JSON but malformed: the user's paid output is stored, with a warning."""
    header = {"__metadata__": {"format": "pt"}, "lora_a": {"dtype": "F16", "shape": [2, 2], "data_offsets": [[0], [8]]}}
    h.sim.faults.header.append(json.dumps(header).encode())
    tracked = h.upload("odd-header", 1)
    h.wait(tracked, timeout=30)
    result = h.outcome(
        "malformed safetensors header",
        "the weights' header says data_offsets [[0], [8]]",
        tracked,
        expect={"COMPLETED": 1},
        tasks=1,
    )
    warnings = (tracked[0].job or {}).get("warnings", [])
    if not any("is malformed" in w for w in warnings):
        result.problems.append(f"no warning about the header: {warnings}")
    return result


def crash_after_end(h: Harness, scale: Scale) -> Outcome:
    """Each function that ends jobs killed right after its terminal write: the event follows from the table."""
    inject = h.stack.aws_requests.injected
    tracked: list[Tracked] = []
    fired = []
    with inject(Fault(dynamodb_write_to("COMPLETED", "crash-after-completed"), "kill_after")) as fault:
        tracked += (t := h.upload("crash-after-completed", 1))
        h.wait(t, timeout=30)
    fired.append(fault.fired)
    with inject(Fault(dynamodb_write_to("REJECTED", "crash-after-rejected"), "kill_after")) as fault:
        tracked += (t := h.upload_bytes("crash-after-rejected", b"not a zip at all"))
        h.wait(t, timeout=30)
    fired.append(fault.fired)
    h.sim.faults.task.append((1401, "invalid parameter"))
    with inject(Fault(dynamodb_write_to("FAILED", "crash-after-failed"), "kill_after")) as fault:
        tracked += (t := h.upload("crash-after-failed", 1))
        h.wait(t, timeout=30)
    fired.append(fault.fired)
    result = h.outcome(
        "crash right after the end is written",
        "StoreWeights killed after COMPLETED, SubmitTraining after REJECTED, ReceiveWebhook after FAILED: each "
        "before it could have published anything itself",
        tracked,
        expect={"COMPLETED": 1, "REJECTED": 1, "FAILED": 1},
        tasks=2,
    )
    if 0 in fired:
        result.problems.append(f"faults fired {fired} times: a crash point was never reached")
    return result


SCENARIOS: dict[str, Callable[[Harness, Scale], Outcome]] = {
    "busy_history": busy_history,
    "history_without_total": history_without_total,
    "proxy_404s": proxy_404s,
    "corrupt_items": corrupt_items,
    "stale_backlog": stale_backlog,
    "retry_after_days": retry_after_days,
    "malformed_header": malformed_header,
    "crash_after_end": crash_after_end,
}
