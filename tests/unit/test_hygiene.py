"""Captions and archive hygiene, rule by rule, from real bytes: what a user is told about junk that zip tools
add, captions (empty, not UTF-8, never naming the trigger word), images a phone stored turned, names tools
choke on and images far larger than the trainer uses — and what a `strict` policy refuses."""

from __future__ import annotations

import zipfile

import pytest

from loradrop.archive import ArchiveLimits, open_archive
from loradrop.captions import CAPTION_BYTES, as_utf8
from loradrop.dataset import DatasetReport, survey
from loradrop_local.dataset import photo
from tests.unit.datasets import macos_zip, phone_jpeg
from tests.unit.zips import MemoryReader, make_zip

LIMITS = ArchiveLimits()


def surveyed(data: bytes, trigger_word: str | None = "zxq") -> DatasetReport:
    return survey(open_archive(MemoryReader(data), LIMITS), trigger_word=trigger_word)


def captioned(count: int = 5, caption: str = "a photo of zxq {i}", size: int = 768) -> dict[str, bytes]:
    files = {f"p{i}.jpg": photo(size, size, i) for i in range(count)}
    return files | {f"p{i}.txt": caption.format(i=i).encode() for i in range(count)}


def test_macos_archive_utility_junk_is_counted_named_and_never_taken_for_images_or_captions() -> None:
    data = macos_zip(captioned())
    archive = open_archive(MemoryReader(data), LIMITS)
    stats = archive.report.as_dict()
    assert (stats["images"], stats["captions"], stats["ignored"], stats["junk"]) == (5, 5, 0, 12)
    assert stats["junk_examples"][:2] == ["set/.DS_Store", "__MACOSX/set/._p0.jpg"]
    assert archive.report.warnings == [
        "12 junk entries left by zip tools (.DS_Store, __MACOSX/…): ignored; `loradrop submit --fix` leaves them out"
    ]
    report = survey(archive, trigger_word="zxq")
    # The `._p0.jpg` AppleDouble files are no unreadable images, and `._p0.txt` no captions without an image
    assert report.warnings() == []
    assert report.fatal() == []
    assert report.as_dict()["formats"] == {"JPEG": 5}


def test_a_latin1_caption_is_named_as_not_utf8_and_still_checked_for_the_trigger_word() -> None:
    files = captioned() | {"p2.txt": "zxq in a café".encode("latin-1")}
    report = surveyed(make_zip(files))
    (warning,) = report.warnings()
    assert warning.startswith("1 caption(s) not UTF-8 (the trainer may misread them): save them as UTF-8")
    assert warning.endswith(": p2.txt")
    assert report.as_dict()["non_utf8_captions"] == 1
    assert report.as_dict()["captions_mentioning_trigger"] == 5  # "zxq" read through Windows-1252
    assert as_utf8("zxq in a café".encode("latin-1")) == "zxq in a café".encode()
    assert as_utf8("zxq in a café".encode()) is None


def test_a_character_cut_at_the_read_limit_is_not_mistaken_for_bad_utf8() -> None:
    long = "x" * (CAPTION_BYTES - 1) + "é and then zxq"  # é's two bytes straddle the limit
    report = surveyed(make_zip(captioned() | {"p0.txt": long.encode()}))
    assert report.as_dict()["non_utf8_captions"] == 0
    # Its trigger word lies past the first KiB: counted as not mentioned (CLIP reads 77 tokens)
    assert report.as_dict()["missing_trigger_examples"] == ["p0.txt"]


def test_empty_captions_are_named_and_a_set_of_only_empty_captions_is_unfit() -> None:
    some = surveyed(make_zip(captioned() | {"p0.txt": b"", "p1.txt": b" \r\n\t"}))
    assert some.as_dict()["empty_captions"] == 2
    assert "2 empty caption(s): those images train without text; write them: p0.txt, p1.txt" in some.warnings()
    assert some.fatal() == []
    every = surveyed(make_zip(captioned(caption="  \n")))
    assert every.fatal() == ["all 5 caption(s) are empty: write captions, or remove the .txt files"]


def test_captions_that_never_name_the_trigger_word_make_a_lora_that_does_not_answer_to_it() -> None:
    report = surveyed(make_zip(captioned(caption="a photo of a woman {i}")))
    (fatal,) = report.fatal()
    assert fatal.startswith("no caption mentions the trigger word 'zxq': with captions WaveSpeed ignores trigger_word")
    assert report.as_dict()["captions_mentioning_trigger"] == 0
    # Without a trigger word to look for, or without captions, there is nothing to say
    assert surveyed(make_zip(captioned(caption="a woman")), trigger_word=None).fatal() == []
    assert surveyed(make_zip({f"p{i}.jpg": photo(768, 768, i) for i in range(5)})).fatal() == []


def test_some_captions_without_the_trigger_word_are_named_case_and_punctuation_aside() -> None:
    files = captioned() | {"p0.txt": b"ZXQ, smiling", "p1.txt": b"zxq's hat", "p2.txt": b"zxqs", "p3.txt": b"nobody"}
    report = surveyed(make_zip(files))
    (warning,) = report.warnings()
    assert warning.startswith("2 of 5 caption(s) do not mention the trigger word 'zxq'")
    assert warning.endswith(": p2.txt, p3.txt")
    assert report.fatal() == []


@pytest.mark.parametrize("rotated", [2, 3])
def test_images_a_phone_stored_turned_are_named_and_most_of_a_set_turned_is_unfit(rotated: int) -> None:
    files = {f"p{i}.jpg": photo(768, 768, i) for i in range(5)}
    files |= {
        f"IMG_{i}.jpg": phone_jpeg(800, 600, 10 + i, 6 if i % 2 else 8, b"MM" if i % 2 else b"II")
        for i in range(rotated)
    }
    report = surveyed(make_zip(files))
    (warning,) = report.warnings()
    assert warning.startswith(f"{rotated} image(s) stored turned or mirrored")
    assert "IMG_0.jpg (turned 270° (shown turned counter-clockwise), EXIF orientation 8)" in warning
    assert "IMG_1.jpg (turned 90° (shown turned clockwise), EXIF orientation 6)" in warning
    assert report.as_dict()["rotated_examples"][0] == "IMG_0.jpg orientation 8"
    assert report.fatal() == []
    mostly = surveyed(
        make_zip({f"IMG_{i}.jpg": phone_jpeg(800, 600, i, 6) for i in range(5)} | {"p.jpg": photo(768, 768, 9)})
    )
    assert mostly.fatal()[0].startswith("5 of 6 images are stored turned or mirrored (EXIF orientation)")


def test_names_tools_choke_on_and_images_far_larger_than_the_trainer_uses_are_named() -> None:
    long = "a-very-long-name-" * 8 + ".jpg"
    files = captioned() | {"café.jpg": photo(768, 768, 7), long: photo(768, 768, 8), "huge.jpg": photo(4200, 600, 9)}
    report = surveyed(make_zip(files))
    (odd,) = (w for w in report.warnings() if "file name(s)" in w)
    assert "café.jpg (non-ASCII)" in odd
    assert "a-very-long-name-a-very-long-name-a-very-long-name-a-very-l…-very-long-name-.jpg (140 characters)" in odd
    (big,) = (w for w in report.warnings() if "over 4096 px" in w)
    assert big.endswith(": huge.jpg 4200x600")
    assert (report.as_dict()["odd_names"], report.as_dict()["oversized"]) == (2, 1)


def test_caption_reads_are_bounded_and_ride_on_the_images_requests() -> None:
    images = {f"set/{i:02d}.jpg": photo(512, 512, i) for i in range(30)}
    with_captions = images | {f"set/{i:02d}.txt": f"zxq {i}".encode() for i in range(30)}
    with_captions["set/00.txt"] = b"zxq " + b"word " * 40_000  # a 200 KB caption
    plain, counted = (
        MemoryReader(make_zip(images, compression=zipfile.ZIP_STORED)),
        MemoryReader(make_zip(with_captions, compression=zipfile.ZIP_STORED)),
    )
    survey(open_archive(plain, LIMITS), trigger_word="zxq")
    report = survey(open_archive(counted, LIMITS), trigger_word="zxq")
    stats = report.read_stats()
    assert stats["captions_read"] == 30
    assert stats["caption_bytes_per_caption_max"] <= 30 + 12 + 1024 + CAPTION_BYTES + 4096  # header, one inflate read
    assert stats["survey_bytes_read"] == stats["caption_bytes_read"] + sum(f.bytes_read for f in report.facts.values())
    assert counted.reads <= plain.reads + 1  # captions share their neighbours' requests
    assert stats["survey_range_reads"] == counted.reads - 1  # all but the tail
