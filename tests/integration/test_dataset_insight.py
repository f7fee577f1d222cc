"""The dataset survey on the local stack: what a user sees on the job before anything is paid for, under the
default `warn` policy (the strict policy runs in test_stack_parameters.py)."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from loradrop_local.aws.stack import LocalStack
from loradrop_local.dataset import photo
from tests.integration.helpers import TERMINAL, events_for, log_lines
from tests.unit.datasets import macos_zip, phone_jpeg

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


def macos_set() -> bytes:
    """Five photos compressed with macOS Archive Utility: one an iPhone's, stored turned (EXIF orientation 6),
    one caption saved by an editor in Latin-1, every caption naming the trigger word "zxq"."""
    files = {f"{i}.jpg": photo(768, 768, i) for i in range(4)} | {"IMG_0042.jpg": phone_jpeg(800, 600, 42, 6)}
    captions = {f"{i}.txt": f"a photo of zxq, pose {i}".encode() for i in range(4)}
    return macos_zip(files | captions | {"IMG_0042.txt": "zxq in a café".encode("latin-1")})


def test_a_macos_zip_with_a_latin1_caption_and_a_turned_photo_trains_with_each_finding_named(
    stack: LocalStack, key: str
) -> None:
    job = stack.wait_for(stack.upload(key, macos_set(), {"trigger-word": "zxq"}), TERMINAL)
    assert job["status"] == "COMPLETED"
    warnings = job["warnings"]
    assert [w.split(" ", 2)[1] for w in warnings] == ["junk", "image(s)", "caption(s)"]
    assert warnings[0].startswith("12 junk entries left by zip tools (.DS_Store, __MACOSX/…): ignored")
    assert "set/IMG_0042.jpg (turned 90° (shown turned clockwise), EXIF orientation 6)" in warnings[1]
    assert warnings[2].endswith(
        "not UTF-8 (the trainer may misread them): save them as UTF-8, or `loradrop submit "
        "--fix` re-encodes them: set/IMG_0042.txt"
    )
    assert (job["archive"]["images"], job["archive"]["captions"], job["archive"]["junk"]) == (5, 5, 12)
    assert (job["dataset"]["rotated"], job["dataset"]["captions_mentioning_trigger"]) == (1, 5)
    # The model card carries the warnings and says the LoRA answers to the trigger word its captions name
    bucket, card_key = job["model_card_uri"].removeprefix("s3://").split("/", 1)
    s3 = stack.client("s3")
    card = json.loads(s3.get_object(Bucket=bucket, Key=card_key)["Body"].read())
    assert (card["trigger_word_used"], card["trigger_word_in_captions"], card["warnings"]) == (False, "all", warnings)
    readme = s3.get_object(Bucket=bucket, Key=card_key.replace("model-card.json", "README.md"))["Body"].read()
    assert "every caption mentions `zxq`, so the LoRA answers to it" in readme.decode()
    assert "- 12 junk entries left by zip tools" in readme.decode()
    # And so does the "Job Completed" event
    (event,) = [e for e in events_for(stack, job["job_id"]) if e["detail-type"] == "Job Completed"]
    assert event["detail"]["warnings"] == warnings
