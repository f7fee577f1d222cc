"""The dataset survey on the local stack: what a user sees on the job before anything is paid for, under the
default `warn` policy and under `DatasetPolicy=strict` set as a template parameter."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from loradrop_local.aws.stack import LocalStack
from loradrop_local.dataset import photo
from tests.integration.helpers import TERMINAL, log_lines

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def zipped(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def poor_set() -> bytes:
    """Three distinct photos, one of them twice, a thumbnail, an iPhone HEIC renamed .jpg, a stray caption."""
    return zipped(
        {
            "ana/1.jpg": photo(1024, 768, 1),
            "ana/2.jpg": photo(1024, 768, 2),
            "ana/2 copy.jpg": photo(1024, 768, 2),
            "ana/thumb.jpg": photo(200, 150, 3),
            "ana/IMG_0042.jpg": b"\x00\x00\x00\x18ftypheic" + bytes(500),
            "ana/old.txt": b"a caption whose image was deleted",
        }
    )


def test_the_survey_is_on_the_job_and_its_findings_are_warnings(stack: LocalStack, key: str) -> None:
    job = stack.wait_for(stack.upload(key, poor_set()), TERMINAL)
    assert job["status"] == "COMPLETED"  # warn: trained anyway, findings recorded
    dataset = job["dataset"]
    assert (dataset["images"], dataset["distinct"], dataset["usable"]) == (5, 4, 3)
    assert dataset["formats"] == {"JPEG": 4, "HEIC": 1}
    assert dataset["small_examples"] == ["ana/thumb.jpg 200x150"]
    assert dataset["orphan_caption_examples"] == ["ana/old.txt"]
    warnings = "\n".join(job["warnings"])
    assert "only 3 distinct usable image(s)" in warnings
    assert "1 duplicate image(s) (same content as another): ana/2.jpg = ana/2 copy.jpg" in warnings
    assert "1 file(s) the trainer cannot read: ana/IMG_0042.jpg (HEIC)" in warnings
    # The stats a user can check the survey's cost by
    assert job["archive"]["range_reads"] >= 1
    assert job["archive"]["survey_bytes_per_image_max"] <= 4096 + 200
    surveyed = [json.loads(line) for line in log_lines(stack).splitlines() if '"dataset surveyed"' in line]
    assert any(line.get("job_id") == job["job_id"] and line["surveyed"] == 5 for line in surveyed)


STRICT_RUN = """
import json, sys
from loradrop_local.aws.stack import LocalStack, StackOptions
from tests.integration.test_dataset_insight import healthy_set, poor_set
from tests.integration.helpers import TERMINAL, posts_for
with LocalStack(StackOptions(parameters={"DatasetPolicy": "strict"}, run_reconciler=False)) as stack:
    poor = stack.wait_for(stack.upload("uploads/poor.zip", poor_set()), TERMINAL)
    healthy = stack.wait_for(stack.upload("uploads/healthy.zip", healthy_set()), TERMINAL)
    print(json.dumps({
        "policy": stack.function_environment("SubmitTrainingFunction")["DATASET_POLICY"],
        "poor": poor, "healthy": healthy, "poor_posts": len(posts_for(stack, "uploads/poor.zip")),
        "events": [(e["detail-type"], e["detail"]["job_id"], e["detail"].get("dataset")) for e in stack.drain_events()],
    }, default=str))
"""


def healthy_set() -> bytes:
    return zipped({f"set/{i}.jpg": photo(768, 768, i) for i in range(5)})


@pytest.fixture(scope="module")
def strict_run() -> dict[str, Any]:
    """A stack deployed with DatasetPolicy=strict (its own process: its own moto), given both sets."""
    result = subprocess.run(
        [sys.executable, "-c", STRICT_RUN], capture_output=True, text=True, timeout=120, check=False, cwd=ROOT
    )
    assert result.returncode == 0, result.stdout + result.stderr
    run: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return run


def test_strict_policy_rejects_an_unfit_set_before_any_task(strict_run: dict[str, Any]) -> None:
    assert strict_run["policy"] == "strict"  # the template parameter reached the function
    job = strict_run["poor"]
    assert (job["status"], job["error_code"]) == ("REJECTED", "INVALID_DATASET")
    assert "only 3 distinct usable image(s): WaveSpeed's trainer wants at least 4" in job["error"]
    assert job["dataset"]["usable"] == 3
    assert strict_run["poor_posts"] == 0
    rejected = [(kind, dataset) for kind, job_id, dataset in strict_run["events"] if job_id == job["job_id"]]
    assert [kind for kind, _ in rejected] == ["Job Rejected"]
    assert rejected[0][1]["duplicates"] == 1


def test_strict_policy_trains_a_healthy_set(strict_run: dict[str, Any]) -> None:
    job = strict_run["healthy"]
    assert job["status"] == "COMPLETED"
    assert job["warnings"] == []
    assert job["dataset"]["smallest"] == job["dataset"]["largest"] == "768x768"
