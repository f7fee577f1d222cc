"""WaveSpeed misbehaving: submissions refused, lost or slow, results failing, every documented failure
code, outputs broken or gone, webhooks lost, repeated or out of order, tasks cancelled, timed out, deleted."""

from __future__ import annotations

from collections import Counter

from loradrop_dev.reliability.harness import Harness, Outcome, Scale, Tracked, simulator_settings


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
