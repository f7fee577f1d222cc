"""A stack deployed with non-default parameters, as `sam deploy --parameter-overrides` would set them:
DatasetPolicy=strict, NotifyEmail and WaveSpeedTier=Silver. It runs in a process of its own (moto's state
is per process), and takes an unfit set, a set whose captions never name the trigger word, a healthy set and
a failing task."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
EMAIL = "ana@example.com"

RUN = f"""
import json, time
from loradrop_local.aws.stack import LocalStack, StackOptions
from tests.integration.test_dataset_insight import healthy_set, poor_set
from tests.integration.helpers import TERMINAL, posts_for
from loradrop_local.dataset import training_zip
parameters = {{"DatasetPolicy": "strict", "NotifyEmail": "{EMAIL}", "WaveSpeedTier": "Silver"}}
with LocalStack(StackOptions(parameters=parameters, run_reconciler=False)) as stack:
    poor = stack.wait_for(stack.upload("uploads/poor.zip", poor_set()), TERMINAL)
    healthy = stack.wait_for(stack.upload("uploads/healthy.zip", healthy_set()), TERMINAL)
    # Captions that say "p3r5on", an upload that asks for "zxq"
    unnamed = training_zip(images=5, size=640, kind="JPEG", trigger_word="p3r5on")
    untriggered = stack.wait_for(stack.upload("uploads/untriggered.zip", unnamed, {{"trigger-word": "zxq"}}), TERMINAL)
    stack.simulator.faults.task.append((1200, "an image was flagged"))
    flagged = stack.wait_for(stack.upload("uploads/flagged.zip", healthy_set()), TERMINAL)
    deadline, notes = time.monotonic() + 10, []
    while len(notes) < 4 and time.monotonic() < deadline:
        notes += stack.notifications()
        time.sleep(0.1)
    sns = stack.client("sns")
    topic = [t["TopicArn"] for t in sns.list_topics()["Topics"] if "NotificationTopic" in t["TopicArn"]][0]
    subscribed = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    print(json.dumps({{
        "policy": stack.function_environment("SubmitTrainingFunction")["DATASET_POLICY"],
        "poor": poor, "healthy": healthy, "flagged": flagged,
        "poor_posts": len(posts_for(stack, "uploads/poor.zip")),
        "untriggered": untriggered, "untriggered_posts": len(posts_for(stack, "uploads/untriggered.zip")),
        "events": [(e["detail-type"], e["detail"]["job_id"], e["detail"].get("dataset")) for e in stack.drain_events()],
        "notifications": notes,
        "subscriptions": [(s["Protocol"], s["Endpoint"]) for s in subscribed],
        "submit_environment": stack.function_environment("SubmitTrainingFunction"),
        "intake_concurrency": [
            s.max_concurrency for s in stack.deployment.queue_sources if s.function == "SubmitTrainingFunction"
        ],
    }}, default=str))
"""


@pytest.fixture(scope="module")
def run() -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-c", RUN], capture_output=True, text=True, timeout=120, check=False, cwd=ROOT
    )
    assert result.returncode == 0, result.stdout + result.stderr
    found: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return found


def test_strict_policy_rejects_an_unfit_set_before_any_task(run: dict[str, Any]) -> None:
    assert run["policy"] == "strict"  # the template parameter reached the function
    job = run["poor"]
    assert (job["status"], job["error_code"]) == ("REJECTED", "INVALID_DATASET")
    assert "only 3 distinct usable image(s): WaveSpeed's trainer wants at least 4" in job["error"]
    assert job["dataset"]["usable"] == 3
    assert run["poor_posts"] == 0
    assert "1 duplicate image(s) (same content as another): ana/2.jpg = ana/2 copy.jpg" in job["warnings"]
    rejected = [(kind, dataset) for kind, job_id, dataset in run["events"] if job_id == job["job_id"]]
    assert [kind for kind, _ in rejected] == ["Job Rejected"]
    assert rejected[0][1]["duplicates"] == 1


def test_strict_policy_rejects_captions_that_never_name_the_trigger_word_before_any_task(run: dict[str, Any]) -> None:
    job = run["untriggered"]
    assert (job["status"], job["error_code"]) == ("REJECTED", "INVALID_DATASET")
    assert job["error"].startswith(
        "the dataset is not fit to train on: no caption mentions the trigger word 'zxq': with captions WaveSpeed "
        "ignores trigger_word, so the LoRA would not answer to it"
    )
    assert (job["dataset"]["captions_with_text"], job["dataset"]["captions_mentioning_trigger"]) == (5, 0)
    assert run["untriggered_posts"] == 0


def test_strict_policy_trains_a_healthy_set(run: dict[str, Any]) -> None:
    job = run["healthy"]
    assert job["status"] == "COMPLETED"
    assert job["warnings"] == []
    assert job["dataset"]["smallest"] == job["dataset"]["largest"] == "768x768"


def test_every_job_end_sends_one_readable_notification_to_the_address(run: dict[str, Any]) -> None:
    assert run["subscriptions"] == [["email", EMAIL]]
    poor, healthy, flagged, untriggered = run["poor"], run["healthy"], run["flagged"], run["untriggered"]
    assert sorted(run["notifications"]) == sorted(
        [
            # The set's other findings stay on the rejected job: the summary points to them
            f"loradrop: poor.zip ended REJECTED (job {poor['job_id']}). [INVALID_DATASET] {poor['error']} "
            f"{len(poor['warnings'])} warning(s): `loradrop status {poor['job_id']}`.",
            f"loradrop: untriggered.zip ended REJECTED (job {untriggered['job_id']}). [INVALID_DATASET] "
            f"{untriggered['error']}",
            f"loradrop: healthy.zip ended COMPLETED (job {healthy['job_id']}). Weights: {healthy['weights_uri']} "
            f"({healthy['weights_size'] / 1024**2:,.1f} MiB, SHA-256 {healthy['weights_sha256']}). "
            f"Model card: {healthy['model_card_uri']}.",
            f"loradrop: flagged.zip ended FAILED (job {flagged['job_id']}). [1200] {flagged['error']}",
        ]
    )


def test_the_tier_sets_the_submitters_and_the_rate_limit_back_off(run: dict[str, Any]) -> None:
    # Silver: 500 starts a minute, 10 submissions at once (the template's Tiers mapping)
    assert run["intake_concurrency"] == [10]
    environment = run["submit_environment"]
    assert (environment["WAVESPEED_STARTS_PER_MINUTE"], environment["SUBMIT_CONCURRENCY"]) == ("500", "10")
