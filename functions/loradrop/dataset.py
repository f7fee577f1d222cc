"""Know the dataset before paying: duplicates, captions, formats and image sizes.

Everything comes from the central directory (names, CRC-32s, sizes) and the first bytes of each image,
read by ranges through the archive's RangeFile and inflated only as far as a header needs: 4 KiB for
most images, up to 256 KiB for a JPEG whose frame header sits behind a large EXIF block. Requests go out
several at a time, batch by batch, within a byte and time budget; an image the budget does not reach is
counted as not surveyed, never guessed.
"""

from __future__ import annotations

import time
import zipfile
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Literal

from loradrop.archive import FEW_IMAGES, Archive, stem_of
from loradrop.images import EXPECTED_FORMAT, TRAINABLE_FORMATS, sniff
from loradrop.ranges import ReadBudgetExceeded

DatasetPolicy = Literal["warn", "strict"]

MIN_USEFUL_SIDE = 512  # FLUX LoRA trainers train at 512 px and up; smaller images are upscaled (soft results)
LOOK_STEPS = (4 * 1024, 64 * 1024, 256 * 1024)  # inflated bytes read per image, as far as its header needs
SURVEY_BYTES = 64 * 1024 * 1024  # fetched in all, for the whole survey
SURVEY_SECONDS = 30.0  # SubmitTraining must keep time for its POST
BATCH = 128  # images whose first bytes are cached at once (memory stays at about BATCH x the step)
MERGE_GAP = 16 * 1024  # neighbouring images closer than this are fetched in one request
EXAMPLES = 5


@dataclass(frozen=True)
class ImageFacts:
    name: str
    format: str | None
    width: int | None = None
    height: int | None = None
    bytes_read: int = 0  # of the archive, local header included
    problem: str | None = None  # the entry could not be read at all

    @property
    def trainable(self) -> bool:
        return self.problem is None and self.format in TRAINABLE_FORMATS

    @property
    def shorter_side(self) -> int | None:
        return min(self.width, self.height) if self.width and self.height else None


@dataclass
class DatasetReport:
    images: int
    duplicate_groups: list[list[str]]
    uncaptioned: list[str]
    orphan_captions: list[str]
    captions: int
    facts: dict[str, ImageFacts] = field(default_factory=dict)
    not_surveyed: int = 0
    seconds: float = 0.0

    # ----- derived findings -----
    @property
    def duplicates(self) -> int:
        """Images that repeat another one (each group's first copy is not counted)."""
        return sum(len(group) - 1 for group in self.duplicate_groups)

    @property
    def distinct(self) -> int:
        return self.images - self.duplicates

    @property
    def mismatched(self) -> list[str]:
        found = []
        for name, facts in self.facts.items():
            expected = EXPECTED_FORMAT.get(name[name.rfind(".") :].lower())
            if facts.trainable and facts.format != expected:  # one it cannot read is listed as unusable
                found.append(f"{name} is {facts.format}")
        return found

    @property
    def unusable(self) -> list[str]:
        """Images the trainer cannot read: not an image, a format it does not take, a corrupt entry."""
        found = []
        for name, facts in self.facts.items():
            if facts.problem is not None:
                found.append(f"{name} ({facts.problem})")
            elif facts.format is None:
                found.append(f"{name} (not an image)")
            elif facts.format not in TRAINABLE_FORMATS:
                found.append(f"{name} ({facts.format})")
        return found

    @property
    def usable_distinct(self) -> int:
        """Distinct images the trainer can use; one the budget did not reach counts as usable."""
        duplicate_copies = {name for group in self.duplicate_groups for name in group[1:]}
        unusable = {name for name, facts in self.facts.items() if not facts.trainable}
        return self.images - len(duplicate_copies | unusable)

    @property
    def small(self) -> list[ImageFacts]:
        return [f for f in self.facts.values() if (side := f.shorter_side) is not None and side < MIN_USEFUL_SIDE]

    @property
    def sized(self) -> list[ImageFacts]:
        return [f for f in self.facts.values() if f.shorter_side is not None]

    @property
    def bytes_read(self) -> int:
        return sum(f.bytes_read for f in self.facts.values())

    def fatal(self) -> list[str]:
        """What makes the set unfit to train on at all (a `strict` policy rejects it for these)."""
        found = []
        if self.usable_distinct == 0:
            found.append(f"none of the {self.images} image(s) is a JPEG, PNG or WebP file the trainer can read")
        elif self.images > 1 and self.distinct == 1:
            found.append(f"all {self.images} images are the same picture")
        elif self.usable_distinct < FEW_IMAGES:
            found.append(
                f"only {self.usable_distinct} distinct usable image(s): WaveSpeed's trainer wants at least "
                f"{FEW_IMAGES}, ideally 10-30"
            )
        return found

    def warnings(self) -> list[str]:
        found = []
        if self.duplicate_groups:
            found.append(
                f"{self.duplicates} duplicate image(s) (same content as another): "
                + _examples(" = ".join(group[:3]) for group in self.duplicate_groups)
            )
        if self.unusable:
            found.append(f"{len(self.unusable)} file(s) the trainer cannot read: {_examples(self.unusable)}")
        if self.mismatched:
            found.append(
                f"{len(self.mismatched)} image(s) not in the format their name says: {_examples(self.mismatched)}"
            )
        if self.small:
            found.append(
                f"{len(self.small)} image(s) under {MIN_USEFUL_SIDE} px on the shorter side (upscaled, so the LoRA "
                f"learns blur): {_examples(f'{f.name} {f.width}x{f.height}' for f in self.small)}"
            )
        if self.uncaptioned and self.captions:
            found.append(
                f"{len(self.uncaptioned)} of {self.images} image(s) have no caption (.txt of the same name): caption "
                f"all of them or none (with captions WaveSpeed ignores the trigger word): {_examples(self.uncaptioned)}"
            )
        if self.orphan_captions:
            found.append(f"{len(self.orphan_captions)} caption(s) without an image: {_examples(self.orphan_captions)}")
        if self.not_surveyed:
            found.append(f"{self.not_surveyed} image(s) not surveyed (the survey's time or byte budget ran out)")
        return found

    def as_dict(self) -> dict[str, Any]:
        """The job's `dataset` attribute: counts, and a few examples of each finding."""
        sized = self.sized
        pixels = sum((f.width or 0) * (f.height or 0) for f in sized)
        smallest = min(sized, key=lambda f: (f.width or 0) * (f.height or 0), default=None)
        largest = max(sized, key=lambda f: (f.width or 0) * (f.height or 0), default=None)
        summary: dict[str, Any] = {
            "images": self.images,
            "distinct": self.distinct,
            "usable": self.usable_distinct,
            "captions": self.captions,
            "duplicates": self.duplicates,
            "uncaptioned": len(self.uncaptioned),
            "orphan_captions": len(self.orphan_captions),
            "formats": dict(Counter(f.format or "not an image" for f in self.facts.values()).most_common()),
            "mismatched": len(self.mismatched),
            "unusable": len(self.unusable),
            "small": len(self.small),
            "min_side": MIN_USEFUL_SIDE,
            "megapixels": round(pixels / 1e6, 2),
            "surveyed": len(self.facts),
            "not_surveyed": self.not_surveyed,
        }
        if smallest and largest:
            summary |= {"smallest": _size(smallest), "largest": _size(largest)}
        examples = {
            "duplicate_examples": [group[:3] for group in self.duplicate_groups[:EXAMPLES]],
            "unusable_examples": self.unusable[:EXAMPLES],
            "mismatched_examples": self.mismatched[:EXAMPLES],
            "small_examples": [f"{f.name} {_size(f)}" for f in self.small[:EXAMPLES]],
            "uncaptioned_examples": self.uncaptioned[:EXAMPLES],
            "orphan_caption_examples": self.orphan_captions[:EXAMPLES],
        }
        return summary | {key: value for key, value in examples.items() if value}

    def read_stats(self) -> dict[str, int]:
        """What the survey read, for the job's `archive` stats."""
        per_image = [f.bytes_read for f in self.facts.values()]
        return {
            "survey_bytes_read": sum(per_image),
            "survey_bytes_per_image_max": max(per_image, default=0),
            "survey_bytes_per_image_mean": sum(per_image) // len(per_image) if per_image else 0,
        }


def _size(facts: ImageFacts) -> str:
    return f"{facts.width}x{facts.height}"


def _examples(items: Any) -> str:
    listed = [str(item)[:100] for item in items]
    more = f" and {len(listed) - EXAMPLES} more" if len(listed) > EXAMPLES else ""
    return ", ".join(listed[:EXAMPLES]) + more


def survey(
    archive: Archive,
    *,
    budget_bytes: int = SURVEY_BYTES,
    budget_seconds: float = SURVEY_SECONDS,
    steps: tuple[int, ...] = LOOK_STEPS,
) -> DatasetReport:
    """Survey an inspected archive's images and captions."""
    started = time.monotonic()
    images = sorted(archive.images, key=lambda info: info.header_offset)
    report = _from_directory(archive)
    file = archive.file
    file.budget = file.fetched + budget_bytes
    file.read_ahead = 16 * 1024  # what a prefetch missed (a longer local header, say) comes in one request
    try:
        for first in range(0, len(images), BATCH):
            if time.monotonic() - started > budget_seconds:
                break
            _survey_batch(archive, images[first : first + BATCH], steps, report)
            file.forget(0, file.source.size)  # only the tail stays cached
    except ReadBudgetExceeded:
        pass  # what was surveyed stands; the rest is counted as not surveyed
    report.not_surveyed = len(images) - len(report.facts)
    report.seconds = time.monotonic() - started
    return report


def _from_directory(archive: Archive) -> DatasetReport:
    """What the central directory alone tells: duplicates and caption pairs."""
    by_content: dict[tuple[int, int], list[str]] = defaultdict(list)
    for info in archive.images:
        by_content[(info.CRC, info.file_size)].append(info.filename)
    image_stems = {stem_of(info.filename) for info in archive.images}
    caption_stems = {stem_of(info.filename) for info in archive.captions}
    return DatasetReport(
        images=len(archive.images),
        duplicate_groups=[group for group in by_content.values() if len(group) > 1],
        uncaptioned=[info.filename for info in archive.images if stem_of(info.filename) not in caption_stems],
        orphan_captions=[info.filename for info in archive.captions if stem_of(info.filename) not in image_stems],
        captions=archive.report.captions,
    )


def _survey_batch(
    archive: Archive, batch: list[zipfile.ZipInfo], steps: tuple[int, ...], report: DatasetReport
) -> None:
    """Look at a batch of images, step by step: each step's bytes are fetched for all of them at once."""
    pending = batch
    for step in steps:
        pending = _prefetch_within_budget(archive, pending, step)
        unfinished = []
        for info in pending:
            facts, complete = _look(archive, info, step)
            report.facts[info.filename] = facts
            if not complete:
                unfinished.append(info)
        pending = unfinished
        if not pending:
            return


def _prefetch_within_budget(archive: Archive, images: list[zipfile.ZipInfo], step: int) -> list[zipfile.ZipInfo]:
    """Prefetch the step for as many of `images` as the byte budget allows (halving until it fits); the
    images returned are the ones fetched. Raises ReadBudgetExceeded when not even one fits."""
    while True:
        try:
            archive.file.prefetch([_span(info, step) for info in images], merge_gap=MERGE_GAP)
        except ReadBudgetExceeded:
            if len(images) <= 1:
                raise
            images = images[: len(images) // 2]
            continue
        return images


def _span(info: zipfile.ZipInfo, step: int) -> tuple[int, int]:
    """The bytes of the archive a look at `step` inflated bytes needs: the local header (its extra field
    may be longer than the directory's: 1 KiB spare), then the data, and one more of zipfile's reads
    (it pulls compressed data 4 KiB at a time; an image that inflates a little short of `step` asks for
    another, which would otherwise be a request of its own)."""
    header = 30 + len(info.orig_filename.encode("utf-8", "surrogateescape")) + len(info.extra) + 1024
    data = min(step + zipfile.ZipExtFile.MIN_READ_SIZE, info.compress_size)
    return info.header_offset, info.header_offset + header + data


def _look(archive: Archive, info: zipfile.ZipInfo, step: int) -> tuple[ImageFacts, bool]:
    """An image's facts from its first `step` inflated bytes, and whether more bytes could not tell more."""
    file = archive.file
    file.high_water = info.header_offset
    try:
        with archive.zip.open(info) as entry:
            data = entry.read(step)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, ValueError) as err:
        problem = f"corrupt entry: {str(err)[:80]}"
        return ImageFacts(info.filename, None, bytes_read=file.high_water - info.header_offset, problem=problem), True
    header = sniff(data, whole=len(data) < step)
    facts = ImageFacts(
        info.filename,
        header.format,
        header.width,
        header.height,
        bytes_read=max(0, file.high_water - info.header_offset),
    )
    return facts, header.complete
