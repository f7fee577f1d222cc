"""4. The webhook path and the end-to-end overhead on the local stack."""

from __future__ import annotations

import json
import tempfile
import threading
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loradrop_dev.bench.processes import MIB, median, size_text

if TYPE_CHECKING:
    from loradrop_local.aws.stack import LocalStack


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_pipeline(jobs: int, e2e_jobs: int, e2e_size: int) -> dict[str, Any]:
    from loradrop_local.aws.stack import LocalStack, StackOptions
    from loradrop_local.dataset import training_zip
    from loradrop_local.simulator.model import SimulatorConfig

    options = StackOptions(
        # The reconciler runs as deployed (compressed): a webhook that went astray costs seconds, and the
        # report counts the webhook answers so that it shows.
        reconcile_every=2.0,
        reconcile_after=5,
        simulator=SimulatorConfig(output_size=e2e_size, processing_after=0.01, train_seconds=0.05),
        extra_environment={"POWERTOOLS_LOG_LEVEL": "WARNING"},
        log_file=Path(tempfile.gettempdir()) / "loradrop-bench-handlers.log",
    )
    with LocalStack(options) as stack:
        body = training_zip(images=4)
        results = _end_to_end(stack, body, e2e_jobs, e2e_size)
        results |= _webhook_path(stack, body, jobs)
    return results


def _end_to_end(stack: LocalStack, body: bytes, e2e_jobs: int, e2e_size: int) -> dict[str, Any]:
    """One job at a time: upload → POST at WaveSpeed, webhook sent → COMPLETED; and what each job costs (the
    handlers' AWS calls, time and invocations), counted from the second job on."""
    from loradrop_local.aws.moto_front import AwsRequest

    sim = stack.simulator
    assert sim is not None
    calls: Counter[str] = Counter()
    runtimes = stack.runtimes

    def count_call(request: AwsRequest) -> None:
        if counting.is_set() and request.caller is not None:  # a function's call, not the harness's
            calls[f"{request.service}:{request.operation}"] += 1

    counting = threading.Event()
    stack.aws_requests.observers.append(count_call)
    to_post, to_done = [], []
    before: dict[str, int] = {}
    for i in range(e2e_jobs):
        if i == 1:  # the first job started every worker: count what the handlers call from here on
            before = {name: len(runtime.durations) for name, runtime in runtimes.items()}
            counting.set()
        key = f"uploads/e2e-{i}.zip"
        sent = time.time()
        job_id = stack.upload(key, body)
        job = stack.wait_for(job_id, {"COMPLETED"}, timeout=120)
        post = next(r for r in sim.submissions() if f"e2e-{i}.zip" in str((r.body or {}).get("data")))
        task = sim.tasks[job["prediction_id"]]
        completed = next(h["at"] for h in job["history"] if h["status"] == "COMPLETED")
        done_at = datetime.fromisoformat(completed.replace("Z", "+00:00")).timestamp()
        to_post.append(post.at - sent)
        assert task.ended_at is not None
        to_done.append(done_at - task.ended_at)
    counting.clear()
    stack.aws_requests.observers.remove(count_call)
    durations = {name: runtime.durations[before.get(name, 0) :] for name, runtime in runtimes.items()}
    durations = {name: d for name, d in durations.items() if d}
    counted = max(1, e2e_jobs - 1)
    results: dict[str, Any] = {}
    results["calls_per_job"] = {name: count / counted for name, count in sorted(calls.items())}
    results["seconds_per_job"] = {name: sum(d) / counted for name, d in durations.items()}
    results["invocations_per_job"] = {name: len(d) / counted for name, d in durations.items()}
    results["item_bytes"] = len(json.dumps(stack.job(job_id)))
    answers: Counter[int] = Counter()
    for task in list(sim.tasks.values()):
        answers.update(task.webhook_answers)
    results["webhook_answers"] = dict(answers)
    results["upload_to_post"] = median(to_post)
    results["webhook_to_completed"] = median(to_done)
    print(
        f"  e2e: upload->POST {results['upload_to_post'] * 1000:.0f} ms, webhook->COMPLETED "
        f"{results['webhook_to_completed']:.2f} s ({size_text(e2e_size)})",
        flush=True,
    )
    return results


def _webhook_path(stack: LocalStack, body: bytes, jobs: int) -> dict[str, Any]:
    """The receiver, warm and in process: first deliveries, repeats, and forgeries."""
    from loradrop_local.aws.events import http_api_event

    sim = stack.simulator
    assert sim is not None
    sim.config.output_size = MIB
    sim.faults.webhook.extend(["drop"] * jobs)
    ids = [stack.upload(f"uploads/hook-{i}.zip", body) for i in range(jobs)]
    waiting = [stack.wait_for(job_id, {"SUBMITTED"}) for job_id in ids]
    time.sleep(0.5)

    def event_for(task_id: str, forged: bool = False) -> dict[str, Any]:
        raw = json.dumps(sim.tasks[task_id].public(sim.url)).encode()
        ts = str(int(time.time()))
        signature = "v3," + "0" * 64 if forged else sim.sign(task_id, ts, raw)
        headers = {
            "content-type": "application/json",
            "webhook-id": task_id,
            "webhook-timestamp": ts,
            "webhook-signature": signature,
        }
        return http_api_event("POST", "/webhooks/wavespeed", headers, raw, "203.0.113.1")

    def timed(events: list[dict[str, Any]], expect: int) -> tuple[list[float], float]:
        latencies = []
        started = time.perf_counter()
        for event in events:
            t = time.perf_counter()
            answer = stack.invoke("ReceiveWebhookFunction", event)
            latencies.append(time.perf_counter() - t)
            assert answer["statusCode"] == expect, answer
        return latencies, len(events) / (time.perf_counter() - started)

    results: dict[str, Any] = {}
    tasks = [job["prediction_id"] for job in waiting]
    for label, events, expect in (
        ("first delivery", [event_for(t) for t in tasks], 200),
        ("repeat delivery", [event_for(t) for t in tasks], 200),
        ("forged", [event_for(t, forged=True) for t in tasks], 401),
    ):
        latencies, rate = timed(events, expect)
        results[label] = {"p50": _percentile(latencies, 0.5), "p99": _percentile(latencies, 0.99), "rate": rate}
        print(
            f"  webhook {label}: p50 {results[label]['p50'] * 1000:.1f} ms, "
            f"p99 {results[label]['p99'] * 1000:.1f} ms, {rate:.0f}/s",
            flush=True,
        )
    return results
