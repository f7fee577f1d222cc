"""The dataset survey: what it finds in a training set before anything is paid for, and how little it reads."""

from __future__ import annotations

import io
import struct
import zipfile

import pytest

from loradrop.archive import ArchiveLimits, open_archive
from loradrop.dataset import DatasetReport, survey
from loradrop.ranges import TAIL_BYTES
from loradrop_local.dataset import photo
from tests.unit.test_images import with_exif_block
from tests.unit.zips import MemoryReader, make_zip

LIMITS = ArchiveLimits()


def surveyed(files: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED, **budget: float) -> DatasetReport:
    return survey(open_archive(MemoryReader(make_zip(files, compression=compression)), LIMITS), **budget)  # type: ignore[arg-type]


def good_set(count: int = 5, size: int = 768) -> dict[str, bytes]:
    files = {f"set/p{i}.jpg": photo(size, size, i) for i in range(count)}
    return files | {f"set/p{i}.txt": f"a photo of zxq {i}".encode() for i in range(count)}


def test_a_healthy_set_has_no_findings_and_its_sizes_are_recorded() -> None:
    report = surveyed(good_set())
    assert report.warnings() == []
    assert report.fatal() == []
    summary = report.as_dict()
    assert summary["images"] == summary["distinct"] == summary["usable"] == summary["captions"] == 5
    assert summary["formats"] == {"JPEG": 5}
    assert (summary["smallest"], summary["largest"], summary["megapixels"]) == ("768x768", "768x768", 2.95)
    assert summary["not_surveyed"] == 0


def test_duplicates_are_found_by_crc_and_size_whatever_their_names() -> None:
    files = good_set(4) | {"set/copy of p1.jpg": photo(768, 768, 1), "other/p2-again.jpg": photo(768, 768, 2)}
    report = surveyed(files)
    assert report.duplicates == 2
    assert sorted(map(sorted, report.duplicate_groups)) == [
        ["other/p2-again.jpg", "set/p2.jpg"],
        ["set/copy of p1.jpg", "set/p1.jpg"],
    ]
    assert "2 duplicate image(s) (same content as another): set/p1.jpg = set/copy of p1.jpg" in report.warnings()[0]


def test_captions_must_pair_with_images() -> None:
    files = good_set(4) | {"set/extra.jpg": photo(768, 768, 9), "set/lonely.txt": b"a caption of nothing"}
    warnings = surveyed(files).warnings()
    assert any(w.startswith("1 of 5 image(s) have no caption") and "set/extra.jpg" in w for w in warnings)
    assert "1 caption(s) without an image: set/lonely.txt" in warnings


def test_a_set_without_any_captions_is_fine_the_trigger_word_stands_in() -> None:
    files = {name: data for name, data in good_set().items() if name.endswith(".jpg")}
    report = surveyed(files)
    assert report.warnings() == []
    assert report.as_dict()["uncaptioned"] == 5


def test_formats_that_do_not_match_their_names_and_files_the_trainer_cannot_read() -> None:
    files = good_set(4) | {
        "set/really-a-png.jpg": photo(800, 600, 5, "PNG"),
        "set/iphone.jpg": b"\x00\x00\x00\x18ftypheic" + bytes(200),
        "set/notes.png": b"just text",
    }
    report = surveyed(files)
    assert report.mismatched == ["set/really-a-png.jpg is PNG"]
    assert sorted(report.unusable) == ["set/iphone.jpg (HEIC)", "set/notes.png (not an image)"]
    assert report.usable_distinct == 5
    assert report.as_dict()["formats"] == {"JPEG": 4, "PNG": 1, "HEIC": 1, "not an image": 1}


def test_images_too_small_to_train_on_are_named_with_their_size() -> None:
    files = good_set(4) | {"set/thumb.jpg": photo(320, 240, 7), "set/wide.webp": photo(1600, 400, 8, "WEBP")}
    report = surveyed(files)
    assert sorted(f"{f.name} {f.width}x{f.height}" for f in report.small) == [
        "set/thumb.jpg 320x240",
        "set/wide.webp 1600x400",
    ]
    assert any("2 image(s) under 512 px on the shorter side" in w for w in report.warnings())


@pytest.mark.parametrize(
    ("files", "fatal"),
    [
        ({f"{i}.jpg": photo(768, 768, 1) for i in range(6)}, "all 6 images are the same picture"),
        ({"a.jpg": b"\x00\x00\x00\x18ftypheic" + bytes(64), "b.png": b"text"}, "none of the 2 image(s) is a JPEG"),
        ({f"{i}.jpg": photo(768, 768, i) for i in range(3)}, "only 3 distinct usable image(s)"),
    ],
    ids=["all-duplicates", "nothing-usable", "too-few"],
)
def test_sets_unfit_to_train_on(files: dict[str, bytes], fatal: str) -> None:
    (finding,) = surveyed(files).fatal()
    assert finding.startswith(fatal)


def test_a_corrupt_entry_is_named_not_crashed_on() -> None:
    data = bytearray(make_zip(good_set(5), compression=zipfile.ZIP_DEFLATED))
    local = data.find(b"PK\x03\x04", 10)  # the second entry's local header: scramble its name
    data[local + 30 : local + 33] = b"zzz"
    report = survey(open_archive(MemoryReader(bytes(data)), LIMITS))
    assert any("corrupt entry" in u for u in report.unusable)
    assert report.usable_distinct == 4


def test_each_image_costs_a_few_kib_and_a_jpeg_behind_a_large_exif_block_at_most_a_bounded_read() -> None:
    files = {f"set/p{i}.jpg": photo(1200, 1200, i) for i in range(8)}  # about 200 KB each
    files["set/phone.jpg"] = with_exif_block(photo(3000, 4000, 3), 60_000)
    data = make_zip(files, compression=zipfile.ZIP_STORED)
    reader = MemoryReader(data)
    report = survey(open_archive(reader, LIMITS))
    phone = report.facts["set/phone.jpg"]
    assert (phone.width, phone.height) == (3000, 4000)
    assert 60_000 < phone.bytes_read <= 64 * 1024 + 200  # the second step reached its frame header
    others = [f.bytes_read for name, f in report.facts.items() if name != "set/phone.jpg"]
    assert max(others) <= 4096 + 200
    assert reader.bytes_read < len(data) / 5  # far from a download
    assert report.read_stats()["survey_bytes_per_image_max"] == phone.bytes_read


def test_requests_for_neighbouring_images_are_merged_and_sent_in_parallel() -> None:
    files = {f"big/{i:03d}.jpg": photo(512, 512, i) for i in range(40)}
    data = make_zip(files, compression=zipfile.ZIP_STORED)
    reader = MemoryReader(data)
    report = survey(open_archive(reader, LIMITS))
    assert len(report.facts) == 40
    assert reader.reads <= 1 + 40  # the tail, then at most one request per image


def test_the_byte_budget_leaves_the_rest_not_surveyed_never_guessed() -> None:
    files = {f"big/{i:03d}.jpg": photo(256, 256, i) for i in range(300)}
    reader = MemoryReader(make_zip(files, compression=zipfile.ZIP_STORED))
    report = survey(open_archive(reader, LIMITS), budget_bytes=300_000)
    assert 0 < len(report.facts) < 300
    assert report.not_surveyed == 300 - len(report.facts)
    assert reader.bytes_read <= TAIL_BYTES + 300_000
    assert f"{report.not_surveyed} image(s) not surveyed" in report.warnings()[-1]
    assert report.usable_distinct == 300  # what was not looked at is not held against the set


def test_a_zero_time_budget_surveys_nothing_and_says_so() -> None:
    report = surveyed(good_set(), budget_seconds=-1)
    assert (len(report.facts), report.not_surveyed) == (0, 5)


def test_the_job_attribute_is_bounded_whatever_the_set() -> None:
    files = {f"{i:04d}.jpg": struct.pack(">I", i) for i in range(1500)}  # 1,500 tiny non-images
    report = survey(open_archive(MemoryReader(make_zip(files)), LIMITS))
    summary = report.as_dict()
    assert summary["unusable"] == 1500
    assert len(summary["unusable_examples"]) == 5
    assert len(str(summary)) < 2000
    assert "and 1495 more" in report.warnings()[0]


def test_survey_uses_the_real_zip_from_a_folder_tool() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in good_set(6).items():
            archive.writestr(name, data)
    report = survey(open_archive(MemoryReader(buffer.getvalue()), LIMITS))
    assert report.as_dict()["usable"] == 6
