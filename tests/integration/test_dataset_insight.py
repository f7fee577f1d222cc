"""The dataset survey on the local stack: what a user sees on the job before anything is paid for, under the
default `warn` policy (the strict policy runs in test_stack_parameters.py)."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from loradrop_local.aws.stack import LocalStack
from loradrop_local.dataset import photo
from tests.integration.helpers import TERMINAL, log_lines

pytestmark = pytest.mark.integration


def zipped(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def healthy_set() -> bytes:
    return zipped({f"set/{i}.jpg": photo(768, 768, i) for i in range(5)})


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
