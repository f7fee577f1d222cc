"""The fault and load scenarios: each injects something, then checks what a user would see."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from loradrop_dev.reliability import busy_account
from loradrop_dev.reliability.harness import (
    Harness,
    Outcome,
    Scale,
    Tracked,
    simulator_settings,
    times_entered,
)
from loradrop_local.aws.moto_front import (
    DYNAMODB_SDK_ATTEMPTS,
    Fault,
    dynamodb_write_to,
    s3_request_for,
    sqs_send_naming,
)

# ----- scenarios -----
FAST: Scale = {
    "burst": 20,
    "burst_rate": 2,  # below what two submitters send even on a loaded machine: the burst meets 429s
    "webhook_jobs": 10,
    "webhook_copies": 10,
    "each": 2,
    "fuzz": 200,
    "crowd": 300,
    "backlog": 205,
}
FULL: Scale = {
    "burst": 200,
    "burst_rate": 8,
    "webhook_jobs": 50,
    "webhook_copies": 20,
    "each": 5,
    "fuzz": 2000,
    "crowd": 3000,
    "backlog": 450,
}


def burst(h: Harness, scale: Scale) -> Outcome:
    count, rate = scale["burst"], scale["burst_rate"]
    # A 2-second "minute": the start limit (rate / 2 s) is below what two submitters can send, so the
    # burst really meets 429s and the back-off.
    with simulator_settings(h, starts_per_minute=rate, minute_seconds=2.0):
        tracked = h.upload("burst", count)
        h.wait(tracked, timeout=60 + 10 * count / rate)
    result = h.outcome(
        "burst of uploads",
        f"{count} uploads at once; WaveSpeed starts {rate} per (2 s) minute",
        tracked,
        expect={"COMPLETED": count},
        tasks=count,
    )
    if result.posts <= result.tasks:
        result.problems.append("WaveSpeed's rate limit was never hit: the burst tested nothing")
    return result


def webhook_flood(h: Harness, scale: Scale) -> Outcome:
    jobs, copies = scale["webhook_jobs"], scale["webhook_copies"]
    h.sim.faults.webhook.extend(["drop"] * jobs)
    tracked = h.upload("flood", jobs)
    h.wait(tracked, timeout=30, statuses={"SUBMITTED"})
    missed = {t.job_id: (t.job or {}).get("status") for t in tracked if not (t.job or {}).get("prediction_id")}
    tasks = [h.sim.tasks[t.job["prediction_id"]] for t in tracked if t.job_id not in missed and t.job]
    deadline = time.monotonic() + 10
    while any(t.status != "completed" for t in tasks) and time.monotonic() < deadline:
        time.sleep(0.05)
    with ThreadPoolExecutor(max_workers=32) as pool:
        statuses = Counter(pool.map(h.post_webhook, [t for t in tasks for _ in range(copies)]))
    h.wait(tracked, timeout=60)
    result = h.outcome(
        "webhook flood",
        f"{jobs * copies} signed webhooks ({copies} per job) at once",
        tracked,
        expect={"COMPLETED": jobs},
        tasks=jobs,
    )
    if set(statuses) != {200}:
        result.problems.append(f"webhook answers {dict(statuses)}")
    if missed:
        result.problems.append(f"jobs not seen SUBMITTED with a task within 30 s: {missed}")
    for item in tracked:
        job = item.job or {}
        # One store per job: one STORING transition and one complete download. (A download that broke
        # off under this load is retried by SQS and leaves nothing behind, so it is allowed.)
        if times_entered(job, "STORING") != 1:
            result.problems.append(f"{item.job_id} moved to STORING more than once")
        task = h.sim.tasks.get(job.get("prediction_id", ""))
        if task is None or task.downloads_completed != 1:
            result.problems.append(
                f"{item.job_id}: weights downloaded in full {getattr(task, 'downloads_completed', 0)} times"
            )
    return result


def duplicate_messages(h: Harness, scale: Scale) -> Outcome:
    count = scale["each"]
    tracked = h.upload("dups", count)
    h.wait(tracked, timeout=30)
    sqs = h.stack.client("sqs")
    s3 = h.stack.client("s3")
    for item in tracked:
        etag = s3.head_object(Bucket=h.stack.uploads_bucket, Key=item.key)["ETag"].strip('"')
        notification = {
            "Records": [
                {
                    "eventSource": "aws:s3",
                    "eventName": "ObjectCreated:Put",
                    "s3": {
                        "bucket": {"name": h.stack.uploads_bucket},
                        "object": {"key": item.key, "eTag": etag, "size": 1},
                    },
                }
            ]
        }
        for _ in range(4):
            sqs.send_message(QueueUrl=h.stack.queue_urls["IntakeQueue"], MessageBody=json.dumps(notification))
        job = item.job or {}
        for _ in range(3):
            sqs.send_message(
                QueueUrl=h.stack.queue_urls["StoreQueue"],
                MessageBody=json.dumps({"job_id": item.job_id, "prediction_id": job.get("prediction_id")}),
            )
    time.sleep(2.0)
    h.wait(tracked, timeout=10)
    return h.outcome(
        "duplicate messages",
        "each S3 event x5, each store message x3 (after completion)",
        tracked,
        expect={"COMPLETED": count},
        tasks=count,
    )


def submit_faults(h: Harness, scale: Scale) -> Outcome:
    """Only 429 and WaveSpeed's own JSON refusals are certain; every other outcome is settled by evidence:
    the task's signed webhook adopts it, or the history proves nothing was created and the job retries."""
    submit = h.sim.faults.submit
    created = ["drop_after_create", "502_after_create", "504_after_create", "slow:1.5"]
    not_created = ["500", "503", "drop_before_create"]
    cases = [("429", 2), ("429", 2)] + [(f, 1) for f in created] + [(f, 2) for f in not_created]
    tracked: list[Tracked] = []
    for fault, _ in cases:
        tracked += h.upload_with(f"submit-{fault.split(':')[0]}", [(submit, fault)])
    h.settle(tracked, timeout=60)
    result = h.outcome(
        "WaveSpeed submit faults",
        "429 x2 (retried); create-then-drop/502/504 and a slow answer (adopted by webhook); "
        "500, 503, drop before create (history proves nothing was created, submitted again)",
        tracked,
        expect={"COMPLETED": len(cases)},
        tasks=len(cases),
    )
    for item, (fault, posts) in zip(tracked, cases, strict=True):
        if h.posts_for(item) != posts:
            result.problems.append(f"{fault}: {h.posts_for(item)} POSTs, expected {posts} (never a blind retry)")
    return result


def uncertain_settling(h: Harness, scale: Scale) -> Outcome:
    """Uncertain submissions whose webhook never comes: the reconciler settles them from the history."""
    submit, webhook = h.sim.faults.submit, h.sim.faults.webhook
    tracked = h.upload_with("lost-504-no-webhook", [(submit, "504_after_create"), (webhook, "drop")])
    tracked += h.upload_with("lost-answer-no-webhook", [(submit, "drop_after_create"), (webhook, "drop")])
    h.settle(tracked, timeout=40)
    # WaveSpeed's records ambiguous: the GET does not name the upload (the docs allow that) and the
    # webhook never comes. The job must still end, FAILED with what to check, after the deadline.
    with simulator_settings(h, result_has_input=False):
        ambiguous = h.upload_with("ambiguous", [(submit, "drop_after_create"), (webhook, "drop")])
        h.settle(ambiguous, timeout=h.settle_deadline + 50)
    result = h.outcome(
        "uncertain submissions, webhook lost",
        "create-then-504 and answer lost after create, both webhooks dropped (adopted from the history); "
        "the same with results that do not name the upload (ends FAILED after the settle deadline)",
        tracked + ambiguous,
        expect={"COMPLETED": 2, "FAILED": 1},
        tasks=3,
    )
    job = ambiguous[0].job or {}
    task_id = next((t.id for t in h.sim.tasks.values() if ambiguous[0].key.split("/")[1] in str(t.input)), "?")
    if job.get("error_code") != "SUBMIT_UNSETTLED" or task_id not in str(job.get("error")):
        result.problems.append(f"ambiguous job ended {job.get('error_code')}: {job.get('error')}")
    if any(h.posts_for(t) != 1 for t in tracked + ambiguous):
        result.problems.append("an uncertain submission was sent twice")
    return result


def result_faults(h: Harness, scale: Scale) -> Outcome:
    h.sim.faults.result.extend(["500", "500", "drop", "drop", "slow:0.3"])
    tracked = h.upload("result-faults", 1)
    h.wait(tracked, timeout=30)
    return h.outcome(
        "WaveSpeed result faults",
        "GET result: 500 x2, dropped x2, slow (webhook answered 503, retried)",
        tracked,
        expect={"COMPLETED": 1},
        tasks=1,
    )


CODES = [
    (1200, "FAILED"),
    (1400, "FAILED"),
    (1401, "FAILED"),
    (1403, "FAILED"),
    (1405, "FAILED"),
    (1402, "COMPLETED"),
    (5000, "COMPLETED"),
    (5003, "COMPLETED"),
    (5004, "COMPLETED"),
]


def task_failures(h: Harness, scale: Scale) -> Outcome:
    results: list[Tracked] = []
    expected: Counter[str] = Counter()
    for code, end in CODES:
        h.sim.faults.task.append((code, f"simulated failure {code}"))
        tracked = h.upload(f"code-{code}", 1)
        h.wait(tracked, timeout=20)
        results += tracked
        expected[end] += 1
        job = tracked[0].job or {}
        if end == "FAILED" and job.get("error_code") != str(code):
            expected["wrong code"] += 1
    retried = sum(1 for _, end in CODES if end == "COMPLETED")
    return h.outcome(
        "failed tasks, every documented code",
        "1200/1400/1401/1403/1405 (fix input) and 1402/5000/5003/5004 (retried once)",
        results,
        expect=dict(expected),
        tasks=len(CODES) + retried,
    )


def output_faults(h: Harness, scale: Scale) -> Outcome:
    h.sim.faults.download.extend(["truncate", "reset", "slow:0.02"])
    ok = h.upload("output-flaky", 1)
    h.wait(ok, timeout=30)
    h.sim.faults.download.extend(["vanish"] * 5)
    gone = h.upload("output-gone", 1)
    h.wait(gone, timeout=40)
    in_dlq = len(h.stack.dead_letters_for("StoreDeadLetterQueue", gone[0].job_id))
    result = h.outcome(
        "output faults",
        "download truncated, reset, slow (then fine); output gone on all 5 tries",
        ok + gone,
        expect={"COMPLETED": 1, "FAILED": 1},
        tasks=2,
    )
    if (gone[0].job or {}).get("error_code") != "STORE_FAILED":
        result.problems.append("vanished output did not end as STORE_FAILED")
    if in_dlq != 1:
        result.problems.append(f"{in_dlq} messages in the store DLQ, expected 1")
    return result


def webhook_faults(h: Harness, scale: Scale) -> Outcome:
    h.sim.faults.webhook.extend(["drop", "out_of_order", "early", "duplicate:5"])
    tracked = h.upload("webhook-faults", 4)
    h.wait(tracked, timeout=5)  # the dropped one waits for the reconciler
    h.reconcile()
    h.wait(tracked, timeout=30)
    return h.outcome(
        "webhook faults",
        "never sent (reconciler), out of order, before the id was recorded, x5",
        tracked,
        expect={"COMPLETED": 4},
        tasks=4,
    )


def crashes(h: Harness, scale: Scale) -> Outcome:
    """Workers killed (SIGKILL, as a crash or an out-of-memory end would) at the AWS call after each step."""
    from loradrop.submission import RECORD_TRIES

    inject = h.stack.aws_requests.injected
    results: list[Tracked] = []
    # Between claim and inspection: the message comes back after the visibility timeout.
    with inject(Fault(s3_request_for("crash-after-claim", ("GET", "HEAD")), "kill")) as fault:
        results += (t := h.upload("crash-after-claim", 1))
        h.wait(t, timeout=30)
    fired = [fault.fired]
    # Between STORING and the store message: the reconciler re-queues it.
    with inject(Fault(sqs_send_naming("crash-before-store-message"), "kill")) as fault:
        results += (t := h.upload("crash-before-store-message", 1))
        h.wait_until(lambda: fault.fired > 0, timeout=10)
        h.settle(t, timeout=30)
    fired.append(fault.fired)
    # Between the copy and COMPLETED: SQS redelivers, the copy is redone.
    with inject(Fault(dynamodb_write_to("COMPLETED", "crash-before-completed"), "kill")) as fault:
        results += (t := h.upload("crash-before-completed", 1))
        h.wait(t, timeout=10, statuses={"STORING"})
        h.settle(t, timeout=60)  # the reconciler re-queues it once the dead copy's lease is over
    fired.append(fault.fired)
    # Between a retryable failure's RECEIVED and the resubmit message: the reconciler re-queues it.
    h.sim.faults.task.append((5003, "unavailable"))
    with inject(Fault(sqs_send_naming("crash-before-resubmit"), "kill")) as fault:
        results += (t := h.upload("crash-before-resubmit", 1))
        h.wait_until(lambda: fault.fired > 0, timeout=10)
        h.settle(t, timeout=30)
    fired.append(fault.fired)
    # Between the POST and SUBMITTED: a crash, then a DynamoDB outage through every retry of the write.
    # The task is paid for: its signed webhook (or the history, if the webhook is lost) adopts it.
    with inject(Fault(dynamodb_write_to("SUBMITTED", "crash-after-post"), "kill")) as fault:
        uncertain = h.upload("crash-after-post", 1)
        h.wait(uncertain, timeout=30)
    fired.append(fault.fired)
    outage = Fault(
        dynamodb_write_to("SUBMITTED", "write-fails-after-post"),
        "InternalServerError",
        RECORD_TRIES * DYNAMODB_SDK_ATTEMPTS,
    )
    with inject(outage):
        uncertain += (t := h.upload_with("write-fails-after-post", [(h.sim.faults.webhook, "drop")]))
        time.sleep(2.0)
    fired.append(outage.fired)
    h.settle(uncertain, timeout=30)
    result = h.outcome(
        "crashes between steps",
        "workers killed after claim, before the store message, before COMPLETED, before the resubmit "
        "message, after the POST; the task-id write failing on every try (webhook lost too)",
        results + uncertain,
        expect={"COMPLETED": 6},
        tasks=7,
    )
    if 0 in fired:
        result.problems.append(f"faults fired {fired} times: a crash point was never reached")
    return result


def task_endings(h: Harness, scale: Scale) -> Outcome:
    tracked: list[Tracked] = []
    for ending in ("cancelled", "timeout", "deleted"):
        tracked += h.upload_with(f"ended-{ending}", [(h.sim.faults.ending, ending)])
    h.settle(tracked, timeout=30)
    result = h.outcome(
        "tasks cancelled, timed out, deleted",
        "WaveSpeed ends tasks as cancelled, timeout (retried once) and deleted",
        tracked,
        expect={"FAILED": 2, "COMPLETED": 1},
        tasks=4,
    )
    codes = [(t.job or {}).get("error_code") for t in tracked]
    if codes != ["CANCELLED", None, "DELETED"]:
        result.problems.append(f"error codes {codes}")
    return result


def reconciler_isolation(h: Harness, scale: Scale) -> Outcome:
    """One unparseable answer and one DynamoDB error among healthy jobs: the run goes on."""
    count = max(3, scale["each"])
    tracked = h.upload_with("isolation-garbled", [(h.sim.faults.garbled, 2), (h.sim.faults.webhook, "drop")])
    tracked += h.upload_with("isolation-dberror", [(h.sim.faults.webhook, "drop")])
    h.sim.faults.webhook.extend(["drop"] * (count - 2))
    tracked += h.upload("isolation-healthy", count - 2)
    h.wait(tracked, timeout=20, statuses={"SUBMITTED"})
    time.sleep(1.0)  # the tasks finish; their webhooks are lost
    # One UpdateItem (every attempt botocore makes of it) fails as a DynamoDB outage would.
    with h.stack.aws_requests.injected(
        Fault(dynamodb_write_to("STORING"), "InternalServerError", DYNAMODB_SDK_ATTEMPTS)
    ):
        first = h.reconcile()
    h.settle(tracked, timeout=30)
    result = h.outcome(
        "reconciler isolation",
        f"{count} lost webhooks: one task answers `status: null` twice, one DynamoDB write fails",
        tracked,
        expect={"COMPLETED": count},
        tasks=count,
    )
    if first.get("error") != 1 or first.get("storing", 0) < count - 2:
        result.problems.append(f"first run {first}: one error, the healthy jobs should move on")
    return result


def store_recovery(h: Harness, scale: Scale) -> Outcome:
    """Copies that time out, die, race or fail for good all end COMPLETED once retried or re-queued."""
    s3 = h.stack.client("s3")
    sqs = h.stack.client("sqs")
    store_queue = h.stack.queue_urls["StoreQueue"]
    problems: list[str] = []
    # 1. A copy too slow for the function's timeout gives up in time, records why; `loradrop retry` works.
    slow = h.upload_with("store-too-slow", [(h.sim.faults.download, "slow:1.5")])
    h.wait(slow, timeout=30)
    timed_out = slow[0].job or {}
    if timed_out.get("error_code") != "STORE_TIMEOUT":
        problems.append(f"slow copy ended {timed_out.get('status')} {timed_out.get('error_code')}")
    retry = {"job_id": slow[0].job_id, "prediction_id": timed_out.get("prediction_id")}
    sqs.send_message(QueueUrl=store_queue, MessageBody=json.dumps(retry))
    h.wait(slow, timeout=30, statuses={"COMPLETED"})  # before the next faults, which it could take
    # 2. Output gone on every try → STORE_FAILED in the DLQ; the output comes back; the DLQ is redriven.
    h.sim.faults.download.extend(["vanish"] * 5)
    gone = h.upload("store-dlq", 1)
    h.wait(gone, timeout=40)
    dead = h.stack.dead_letters_for("StoreDeadLetterQueue", gone[0].job_id)
    if len(dead) != 1 or (gone[0].job or {}).get("error_code") != "STORE_FAILED":
        problems.append(f"vanished output: {len(dead)} DLQ messages, {(gone[0].job or {}).get('error_code')}")
    for body in dead:
        sqs.send_message(QueueUrl=store_queue, MessageBody=json.dumps(body))
    h.wait(gone, timeout=30, statuses={"COMPLETED"})
    # 3. A copy killed mid-way (no clean-up: its lease stays) is re-queued only once the lease is over.
    with h.stack.aws_requests.injected(Fault(s3_request_for("store-killed", ("PUT", "POST")), "kill")):
        killed = h.upload("store-killed", 1)
        h.wait(killed, timeout=10, statuses={"STORING"})
        time.sleep(1.0)
    first = h.reconcile()
    if first.get("copy running", 0) < 1:
        problems.append(f"the reconciler did not wait for the dead copy's lease: {first}")
    # 4. Two more copies of the same message while a slow copy runs: one copy, one download.
    racing = h.upload_with("store-race", [(h.sim.faults.download, "slow:0.4")])
    h.wait(racing, timeout=10, statuses={"STORING"})
    job = racing[0].job or {}
    for _ in range(2):
        body = {"job_id": racing[0].job_id, "prediction_id": job.get("prediction_id")}
        sqs.send_message(QueueUrl=store_queue, MessageBody=json.dumps(body))
    tracked = slow + gone + killed + racing
    for item in tracked:
        item.job = None
    h.settle(tracked, timeout=60)
    result = h.outcome(
        "store recovery",
        "copy slower than the timeout (then retried); output gone 5 times (then the DLQ redriven); "
        "copy killed mid-way (lease, then re-queued); two extra copies racing a slow one",
        tracked,
        expect={"COMPLETED": 4},
        tasks=4,
    )
    raced = h.sim.tasks.get((racing[0].job or {}).get("prediction_id", ""))
    if raced is None or raced.downloads_completed != 1:
        problems.append(f"racing copies downloaded {getattr(raced, 'downloads_completed', 0)} times")
    if times_entered(racing[0].job or {}, "STORING") != 1:
        problems.append("the raced job moved to STORING more than once")
    s3.list_objects_v2(Bucket=h.stack.weights_bucket)  # the stack is still answering
    result.problems += problems
    return result


SCENARIOS: dict[str, Callable[[Harness, Scale], Outcome]] = {
    "burst": burst,
    "webhook_flood": webhook_flood,
    "duplicate_messages": duplicate_messages,
    "submit_faults": submit_faults,
    "uncertain_settling": uncertain_settling,
    "result_faults": result_faults,
    "task_failures": task_failures,
    "output_faults": output_faults,
    "webhook_faults": webhook_faults,
    "crashes": crashes,
    "task_endings": task_endings,
    "reconciler_isolation": reconciler_isolation,
    "store_recovery": store_recovery,
    **busy_account.SCENARIOS,  # a busy, messy account
}
