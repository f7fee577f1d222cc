"""Know the dataset before paying: duplicates, captions, formats, image sizes and orientation, names.

Everything comes from the central directory (names, CRC-32s, sizes), the first bytes of each image and
the first KiB of each caption, read by ranges through the archive's RangeFile and inflated only as far as
needed: 4 KiB for most images, up to 256 KiB for a JPEG whose frame header sits behind a large EXIF block
(its orientation is read from that block on the way). Captions are fetched in the same requests as their
neighbouring images. Requests go out several at a time, batch by batch, within a byte and time budget; an
image or caption the budget does not reach is counted as not surveyed, never guessed. What was found, and
what it means, is `findings.DatasetReport`.
"""

from __future__ import annotations

import time
import zipfile
import zlib
from collections import defaultdict
from typing import Literal

from loradrop.archive import CAPTION_EXTENSION, Archive, stem_of
from loradrop.captions import CAPTION_BYTES, CaptionFacts, caption_facts
from loradrop.findings import DatasetReport, ImageFacts
from loradrop.hygiene import name_problem, shortened
from loradrop.images import sniff
from loradrop.ranges import ReadBudgetExceeded

__all__ = ["DatasetReport", "survey"]

DatasetPolicy = Literal["warn", "strict"]

LOOK_STEPS = (4 * 1024, 64 * 1024, 256 * 1024)  # inflated bytes read per image, as far as its header needs
SURVEY_BYTES = 64 * 1024 * 1024  # fetched in all, for the whole survey (captions included)
SURVEY_SECONDS = 30.0  # SubmitTraining must keep time for its POST
BATCH = 128  # entries whose first bytes are cached at once (memory stays at about BATCH x the step)
MERGE_GAP = 16 * 1024  # neighbouring entries closer than this are fetched in one request


def survey(
    archive: Archive,
    *,
    trigger_word: str | None = None,
    budget_bytes: int = SURVEY_BYTES,
    budget_seconds: float = SURVEY_SECONDS,
    steps: tuple[int, ...] = LOOK_STEPS,
) -> DatasetReport:
    """Survey an inspected archive's images and captions; captions are checked for `trigger_word`."""
    started = time.monotonic()
    report = _from_directory(archive, trigger_word)
    image_stems = {stem_of(info.filename) for info in archive.images}
    captions = [
        i for i in archive.captions if stem_of(i.filename) in image_stems and i.filename not in report.caption_facts
    ]
    entries = sorted(archive.images + captions, key=lambda info: info.header_offset)  # neighbours share requests
    file = archive.file
    file.budget = file.fetched + budget_bytes
    file.read_ahead = 16 * 1024  # what a prefetch missed (a longer local header, say) comes in one request
    requests_before = file.requests
    try:
        for first in range(0, len(entries), BATCH):
            if time.monotonic() - started > budget_seconds:
                break
            _survey_batch(archive, entries[first : first + BATCH], steps, report)
            file.forget(0, file.source.size)  # only the tail stays cached
    except ReadBudgetExceeded:
        pass  # what was surveyed stands; the rest is counted as not surveyed
    report.not_surveyed = len(archive.images) - len(report.facts)
    report.captions_not_read = report.captions - len(report.caption_facts)
    report.survey_requests = file.requests - requests_before
    report.seconds = time.monotonic() - started
    return report


def _from_directory(archive: Archive, trigger_word: str | None) -> DatasetReport:
    """What the central directory alone tells: duplicates, caption pairs, empty captions, odd names."""
    by_content: dict[tuple[int, int], list[str]] = defaultdict(list)
    for info in archive.images:
        by_content[(info.CRC, info.file_size)].append(info.filename)
    image_stems = {stem_of(info.filename) for info in archive.images}
    caption_stems = {stem_of(info.filename) for info in archive.captions}
    empty = [info for info in archive.captions if info.file_size == 0 and stem_of(info.filename) in image_stems]
    return DatasetReport(
        images=len(archive.images),
        duplicate_groups=[group for group in by_content.values() if len(group) > 1],
        uncaptioned=[info.filename for info in archive.images if stem_of(info.filename) not in caption_stems],
        orphan_captions=[info.filename for info in archive.captions if stem_of(info.filename) not in image_stems],
        captions=archive.report.captions,
        caption_facts={
            info.filename: caption_facts(info.filename, b"", size=0, trigger_word=trigger_word, bytes_read=0)
            for info in empty
        },
        trigger_word=trigger_word,
        odd_names=[
            f"{shortened(info.filename)} ({why})"
            for info in archive.images + archive.captions
            if (why := name_problem(info.filename))
        ],
    )


def _is_caption(info: zipfile.ZipInfo) -> bool:
    return info.filename.lower().endswith(CAPTION_EXTENSION)


def _survey_batch(
    archive: Archive, batch: list[zipfile.ZipInfo], steps: tuple[int, ...], report: DatasetReport
) -> None:
    """Look at a batch of images and captions, step by step: each step's bytes are fetched for all of them at
    once. A caption needs only the first step."""
    pending = batch
    for step in steps:
        pending = _prefetch_within_budget(archive, pending, step)
        unfinished = []
        for info in pending:
            if _is_caption(info):
                report.caption_facts[info.filename] = _read_caption(archive, info, report.trigger_word)
                continue
            facts, complete = _look(archive, info, step)
            report.facts[info.filename] = facts
            if not complete:
                unfinished.append(info)
        pending = unfinished
        if not pending:
            return


def _prefetch_within_budget(archive: Archive, entries: list[zipfile.ZipInfo], step: int) -> list[zipfile.ZipInfo]:
    """Prefetch the step for as many of `entries` as the byte budget allows (halving until it fits); the
    entries returned are the ones fetched. Raises ReadBudgetExceeded when not even one fits."""
    while True:
        spans = [_span(info, CAPTION_BYTES if _is_caption(info) else step) for info in entries]
        try:
            archive.file.prefetch(spans, merge_gap=MERGE_GAP)
        except ReadBudgetExceeded:
            if len(entries) <= 1:
                raise
            entries = entries[: len(entries) // 2]
            continue
        return entries


def _span(info: zipfile.ZipInfo, step: int) -> tuple[int, int]:
    """The bytes of the archive a look at `step` inflated bytes needs: the local header (its extra field
    may be longer than the directory's: 1 KiB spare), then the data, and one more of zipfile's reads
    (it pulls compressed data 4 KiB at a time; an image that inflates a little short of `step` asks for
    another, which would otherwise be a request of its own)."""
    header = 30 + len(info.orig_filename.encode("utf-8", "surrogateescape")) + len(info.extra) + 1024
    data = min(step + zipfile.ZipExtFile.MIN_READ_SIZE, info.compress_size)
    return info.header_offset, info.header_offset + header + data


_UNREADABLE = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, ValueError)


def _look(archive: Archive, info: zipfile.ZipInfo, step: int) -> tuple[ImageFacts, bool]:
    """An image's facts from its first `step` inflated bytes, and whether more bytes could not tell more."""
    file = archive.file
    file.high_water = info.header_offset
    try:
        with archive.zip.open(info) as entry:
            data = entry.read(step)
    except _UNREADABLE as err:
        problem = f"corrupt entry: {str(err)[:80]}"
        return ImageFacts(info.filename, None, bytes_read=file.high_water - info.header_offset, problem=problem), True
    header = sniff(data, whole=len(data) < step)
    facts = ImageFacts(
        info.filename,
        header.format,
        header.width,
        header.height,
        bytes_read=max(0, file.high_water - info.header_offset),
        orientation=header.orientation,
    )
    return facts, header.complete


def _read_caption(archive: Archive, info: zipfile.ZipInfo, trigger_word: str | None) -> CaptionFacts:
    """A caption's facts from its first CAPTION_BYTES inflated bytes (a corrupt one reads as no text)."""
    file = archive.file
    file.high_water = info.header_offset
    try:
        with archive.zip.open(info) as entry:
            data = entry.read(CAPTION_BYTES)
    except _UNREADABLE:
        data = b""
    read = max(0, file.high_water - info.header_offset)
    return caption_facts(info.filename, data, size=info.file_size, trigger_word=trigger_word, bytes_read=read)
