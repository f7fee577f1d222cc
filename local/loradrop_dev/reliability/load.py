"""Load: a burst of uploads against WaveSpeed's start limit, a flood of signed webhooks, every message
delivered again."""

from __future__ import annotations

import json
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from loradrop_dev.reliability.harness import Harness, Outcome, Scale, simulator_settings, times_entered


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
