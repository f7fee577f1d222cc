"""WaveSpeed misbehaving: submissions refused, lost or slow, results failing, every documented failure
code, outputs broken or gone, webhooks lost, repeated or out of order, tasks cancelled, timed out, deleted; and
the same for the sample images' inference tasks."""

from __future__ import annotations

from collections import Counter
from typing import Any, NamedTuple

from loradrop_dev.reliability.harness import Harness, Outcome, Scale, Tracked, simulator_settings
from loradrop_dev.reliability.sample_counts import inference_tasks, sample_rows


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


SAMPLE_PROMPTS = "a portrait of {trigger} in a garden | {trigger} on a beach at sunset"
SampleEnd = tuple[str, str]  # a sample's state and error code, as the job shows them
DONE: SampleEnd = ("done", "")


class SampleCase(NamedTuple):
    label: str
    faults: list[tuple[str, Any]]  # by the simulator's queue: queued while the training task is held, so the next
    reconciling: bool  # only the reconciler can settle it (its webhooks are lost)
    ends: list[SampleEnd]  # how the two samples end, in order
    note: str = ""  # in a sample's history: the fault met that sample, and was settled this way


ADOPTED = "task adopted: "
SAMPLE_CASES = [  # one a job, in rotation
    SampleCase("task-failed", [("task", (5000, "the renderer fell over"))], False, [DONE, ("failed", "5000")]),
    SampleCase("answer-lost", [("submit", "drop_after_create")], False, [DONE, DONE], ADOPTED + "its signed webhook"),
    SampleCase(
        "all-lost",
        [("submit", "drop_after_create"), ("webhook", "drop"), ("webhook", "drop")],
        True,
        [DONE, DONE],
        ADOPTED + "found in WaveSpeed's prediction history",
    ),
    SampleCase("output-gone", [("webhook", "drop"), ("webhook", "drop")], True, [DONE, ("failed", "OUTPUT_GONE")]),
]


def sample_faults(h: Harness, scale: Scale) -> Outcome:
    """Each job's two sample images meet a fault: the job stays COMPLETED with its weights, its samples settle (by
    their webhooks, or by the reconciler when those are lost), and each prompt costs one inference task."""
    tracked: list[Tracked] = []
    cases = [SAMPLE_CASES[n % len(SAMPLE_CASES)] for n in range(scale["sample_jobs"])]
    for case in cases:
        job = _sampled_upload(h, case.label, case.faults)
        if case.label == "output-gone":
            _vanish_before_the_copy(h, job[0])
        h.settle(job, timeout=60, reconciling=case.reconciling)
        h.sim.faults.clear()  # (and images_only off) before the next upload
        tracked += job
    result = h.outcome(
        "sample image faults",
        "2 sample prompts a job, one fault a job in rotation: a sample task failed (5000); a sample POST's answer "
        "lost (adopted by its webhook); that and both webhooks lost (the reconciler, from the history); both "
        "webhooks lost and an image gone before its copy",
        tracked,
        expect={"COMPLETED": len(tracked)},
        tasks=len(tracked),
        samples=2 * len(tracked),
    )
    for item, case in zip(tracked, cases, strict=True):
        samples = (item.job or {}).get("samples") or []
        ends = sorted((str(s.get("state")), str(s.get("error_code") or "")) for s in samples)
        if ends != case.ends:
            result.problems.append(f"{item.job_id}: samples ended {ends}, expected {case.ends}")
        notes = {e.get("note") for row in sample_rows(h.stack, item.job or {}) if row for e in row.history}
        if case.note and case.note not in notes:
            result.problems.append(f"{item.job_id}: no sample's history says {case.note!r}")
    return result


def _sampled_upload(h: Harness, label: str, faults: list[tuple[str, Any]]) -> list[Tracked]:
    """An upload asking for two samples whose training task is held (created, its POST answered) until the faults for
    what follows it, its sample POSTs and tasks, are queued: the queues are global, taken in order."""
    metadata = {"trigger-word": "zxq", "sample-prompts": SAMPLE_PROMPTS}
    tracked = h.upload_with(f"samples-{label}", [(h.sim.faults.held, 1)], metadata)
    h.sim.faults.images_only = True  # a training task retried meanwhile (a slow ZIP fetch, say) takes none of them
    for queue, value in faults:
        getattr(h.sim.faults, queue).append(value)
    h.sim.release()
    return tracked


def _vanish_before_the_copy(h: Harness, item: Tracked) -> None:
    """Once the job's sample tasks completed (their webhooks lost: no image copied yet), the next output GET, the
    first image's copy, finds it gone. Queued earlier, the LoRA's download by a sample task would take it."""
    h.wait([item], timeout=30)
    seeds = {row.seed for row in sample_rows(h.stack, item.job or {}) if row is not None}
    h.wait_until(
        lambda: sum(t.status == "completed" for t in inference_tasks(h.stack, seeds)) == len(seeds), timeout=30
    )
    h.sim.faults.download.append("vanish")
