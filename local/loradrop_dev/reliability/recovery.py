"""Recovery: workers killed and AWS writes failing between the pipeline's steps, a reconciler run that meets
bad answers, and copies of the weights that time out, die, race or fail for good."""

from __future__ import annotations

import json
import time
from typing import Any

from loradrop.jobs import JobStore
from loradrop_dev.reliability.harness import Harness, Outcome, Scale, Tracked, times_entered
from loradrop_local.aws.moto_front import (
    DYNAMODB_SDK_ATTEMPTS,
    Fault,
    dynamodb_write_to,
    s3_request_for,
    sqs_send_naming,
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
    killed, first = _kill_a_copy(h)
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


def _kill_a_copy(h: Harness) -> tuple[list[Tracked], dict[str, Any]]:
    """An upload whose copy is killed at its first write, and what the reconciler's next pass did."""
    with h.stack.aws_requests.injected(Fault(s3_request_for("store-killed", ("PUT", "POST")), "kill")):
        killed = h.upload("store-killed", 1)
        h.wait(killed, timeout=10, statuses={"STORING"})
        # The job is STORING before its copy starts (a loaded machine delays the store message): wait for the
        # copy's lease, not a fixed second, then for the copy to reach its killing write
        _wait_for_lease(h, killed[0].job_id, timeout=10)
        time.sleep(1.0)
    return killed, h.reconcile()


def _wait_for_lease(h: Harness, job_id: str, timeout: float) -> None:
    """Until a copy holds the job's lease (an internal attribute: read from the table, not the public job)."""
    jobs = JobStore(h.stack.client("dynamodb"), h.stack.table_name)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = jobs.get(job_id)
        if job is not None and job.store_lease_until:
            return
        time.sleep(0.05)
