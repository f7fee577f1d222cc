"""6. Scale on paper: what the measured figures cost and allow on AWS and WaveSpeed."""

from __future__ import annotations

from typing import Any

from loradrop_dev.bench.processes import GIB, size_text
from loradrop_local.aws.cloudformation import load_template

# us-east-1 list prices as published by AWS (checked 2025; verify before quoting): per unit below.
PRICES = {
    "lambda_gb_s": 0.0000133334,  # arm64
    "lambda_request": 0.20 / 1e6,
    "sqs_request": 0.40 / 1e6,
    "ddb_write_unit": 0.625 / 1e6,  # on-demand, per 1 KB written (index updates count too)
    "ddb_read_unit": 0.125 / 1e6,  # on-demand, per 4 KB strongly consistent read
    "s3_put": 0.005 / 1000,  # PUT, COPY, POST, LIST
    "s3_get": 0.0004 / 1000,
    "s3_gb_month": 0.023,
    "event": 1.00 / 1e6,
    "http_api_request": 1.00 / 1e6,
}
MEMORY_MB = {
    "SubmitTrainingFunction": 512,
    "ReceiveWebhookFunction": 512,
    "StoreWeightsFunction": 1024,
    "ReconcileJobsFunction": 512,
}
POST_SECONDS = 1.0  # WaveSpeed's answer to a POST, roughly (not documented)


def scale_on_paper(pipeline: dict[str, Any], output_size: int) -> list[str]:
    rows = per_job_costs(pipeline, output_size)
    per_job = sum(cost for *_, cost in rows)
    lines = [
        "Per-job operations counted on the local stack (the handlers' own AWS calls, plus what S3, Lambda's",
        "SQS poller and WaveSpeed do on a job's behalf), priced at us-east-1 list prices. Lambda time is the",
        "local stack's handler time, a stand-in: in Lambda the submit and webhook paths add WaveSpeed's",
        "latency, and StoreWeights runs at CloudFront-to-S3 speed.",
        "",
        "| item | per job | cost per 1,000 jobs (USD) |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {amount} | {cost * 1000:.4f} |" for name, amount, cost in rows]
    lines += [
        f"| **total** | | **{per_job * 1000:.2f}** |",
        "",
        "Handler calls per job (including the reconciler's periodic queries, spread over the jobs): "
        + ", ".join(f"{k} {v:.3g}" for k, v in pipeline["calls_per_job"].items())
        + ".",
        "",
    ]
    return lines + throughput_by_tier(pipeline["seconds_per_job"])


def per_job_costs(pipeline: dict[str, Any], output_size: int) -> list[tuple[str, str, float]]:
    """(item, amount per job, cost per job in USD) for what one job uses on AWS."""
    calls = pipeline["calls_per_job"]
    seconds = pipeline["seconds_per_job"]
    invocations = pipeline["invocations_per_job"]

    def total(prefix: str, names: tuple[str, ...] = ()) -> float:
        return sum(v for k, v in calls.items() if k.startswith(prefix) and (not names or k.split(":")[1] in names))

    item_kb = max(1, -(-pipeline["item_bytes"] // 1024))
    ddb_writes = total("dynamodb:", ("PutItem", "UpdateItem"))
    ddb_reads = total("dynamodb:", ("GetItem", "Query"))
    s3_puts = total(
        "s3:",
        (
            "PutObject",
            "CreateMultipartUpload",
            "UploadPart",
            "CompleteMultipartUpload",
            "PutObjectTagging",
            "ListMultipartUploads",
        ),
    )
    s3_gets = total("s3:", ("GetObject", "HeadObject")) + 1  # + WaveSpeed's download of the ZIP
    # SQS: our sends + S3's notification + Lambda's receive and delete for each message
    messages = 1 + total("sqs:", ("SendMessage",))
    sqs_requests = total("sqs:") + 2 * messages
    gb_s = sum(seconds.get(f, 0.0) * MEMORY_MB[f] / 1024 for f in MEMORY_MB)
    return [
        ("Lambda compute", f"{gb_s:.2f} GB-s", gb_s * PRICES["lambda_gb_s"]),
        ("Lambda requests", f"{sum(invocations.values()):.1f}", sum(invocations.values()) * PRICES["lambda_request"]),
        ("SQS requests", f"{sqs_requests:.1f}", sqs_requests * PRICES["sqs_request"]),
        (
            "DynamoDB writes",
            f"{ddb_writes:.1f} x ~{item_kb} KB (+ index updates)",
            ddb_writes * (item_kb + 1) * PRICES["ddb_write_unit"],
        ),
        ("DynamoDB reads", f"{ddb_reads:.1f}", ddb_reads * PRICES["ddb_read_unit"]),
        ("S3 PUT-class requests", f"{s3_puts:.1f}", s3_puts * PRICES["s3_put"]),
        ("S3 GET-class requests", f"{s3_gets:.1f}", s3_gets * PRICES["s3_get"]),
        ("EventBridge events", f"{total('events:'):.1f}", total("events:") * PRICES["event"]),
        ("HTTP API requests (webhooks)", "1", PRICES["http_api_request"]),
        (f"S3 storage, {size_text(output_size)} of weights, one month", "", output_size / GIB * PRICES["s3_gb_month"]),
    ]


def throughput_by_tier(seconds: dict[str, float]) -> list[str]:
    """What each WaveSpeed tier allows, and which part of the stack limits it first."""
    lines = [
        "Throughput: WaveSpeed's tier decides, and the stack's `WaveSpeedTier` parameter follows it (the",
        "template's `Tiers` mapping): SubmitTraining runs that many submissions at once, each taking "
        f"{seconds.get('SubmitTrainingFunction', 0) * 1000:.0f} ms here plus WaveSpeed's answer (say "
        f"{POST_SECONDS:g} s), and the webhook route is throttled to match.",
        "",
        "| tier | WaveSpeed: starts/min, concurrent tasks | submitters | loradrop's start capacity (/min) "
        "| webhook throttle (rps) | first bottleneck |",
        "|---|---|---|---|---|---|",
    ]
    submit = seconds.get("SubmitTrainingFunction", 0) + POST_SECONDS
    for tier, limits in load_template()["Mappings"]["Tiers"].items():
        starts, concurrent, submitters = (
            limits["StartsPerMinute"],
            limits["ConcurrentTasks"],
            limits["SubmitConcurrency"],
        )
        capacity = submitters * 60 / submit
        if tier == "Bronze":
            bottleneck = "WaveSpeed: 2 concurrent tasks (~6 jobs/h at 20 min each)"
        elif capacity >= starts:
            bottleneck = "WaveSpeed's start rate (raise the tier)"
        else:
            bottleneck = f"SubmitTraining: {submitters} at once start ~{capacity:.0f}/min"
        lines.append(
            f"| {tier} | {starts:,}, {concurrent:,} | {submitters} | {capacity:,.0f} | {limits['WebhookRate']} "
            f"| {bottleneck} |"
        )
    lines += [
        "",
        "`make reliability` runs a burst at Bronze and at Silver on stacks deployed with that tier and reports",
        "the starts per minute achieved against the limit (docs/reliability.md). Beyond those: the jobs table is",
        "on-demand; the `by-status` index puts each state in one partition (about 1,000 writes/s each), which",
        "only matters past ~100 job transitions a second.",
    ]
    return lines
