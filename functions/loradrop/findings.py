"""What the dataset survey found (`DatasetReport`), and its findings in a user's words: the job's warnings,
what a `strict` policy rejects, and the counts and examples the job keeps as `dataset`. The survey that fills
it in is `dataset`; the caption and hygiene rules it applies are `captions` and `hygiene`."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from loradrop.archive import FEW_IMAGES
from loradrop.captions import CaptionFacts, caption_fatal, caption_summary, caption_warnings
from loradrop.hygiene import LARGEST_SIDE, orientation_words
from loradrop.images import EXPECTED_FORMAT, TRAINABLE_FORMATS

MIN_USEFUL_SIDE = 512  # FLUX LoRA trainers train at 512 px and up; smaller images are upscaled (soft results)
EXAMPLES = 5


@dataclass(frozen=True)
class ImageFacts:
    name: str
    format: str | None
    width: int | None = None
    height: int | None = None
    bytes_read: int = 0  # of the archive, local header included
    problem: str | None = None  # the entry could not be read at all
    orientation: int | None = None  # EXIF orientation, JPEG only (1: as stored)

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
    caption_facts: dict[str, CaptionFacts] = field(default_factory=dict)
    trigger_word: str | None = None  # the captions are checked for it
    odd_names: list[str] = field(default_factory=list)  # "name (why)"
    not_surveyed: int = 0
    captions_not_read: int = 0
    survey_requests: int = 0
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
    def rotated(self) -> list[ImageFacts]:
        """Images whose EXIF says to turn or mirror them for display: trainers ignore it and learn them so."""
        return [f for f in self.facts.values() if f.orientation is not None and f.orientation != 1]

    @property
    def oversized(self) -> list[ImageFacts]:
        return [f for f in self.sized if max(f.width or 0, f.height or 0) > LARGEST_SIDE]

    @property
    def bytes_read(self) -> int:
        return sum(f.bytes_read for f in self.facts.values())

    @property
    def read_captions(self) -> list[CaptionFacts]:
        return list(self.caption_facts.values())

    def fatal(self) -> list[str]:
        """What makes the set unfit to train on at all (a `strict` policy rejects it for these)."""
        found = self._image_fatal() + caption_fatal(self.read_captions, self.trigger_word)
        if len(self.rotated) * 2 > len(self.facts):
            found.append(
                f"{len(self.rotated)} of {len(self.facts)} images are stored turned or mirrored (EXIF orientation), "
                "and trainers ignore EXIF: they would learn them sideways; `loradrop submit --fix` turns the pixels"
            )
        return found

    def _image_fatal(self) -> list[str]:
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
        """Findings short of fatal, each naming a few examples."""
        found = self._image_warnings() + self._hygiene_warnings()
        found += caption_warnings(self.read_captions, self.trigger_word, _examples)
        missed = [
            f"{n} {kind}(s)" for n, kind in ((self.not_surveyed, "image"), (self.captions_not_read, "caption")) if n
        ]
        if missed:
            found.append(f"{' and '.join(missed)} not surveyed (the survey's time or byte budget ran out)")
        return found

    def _hygiene_warnings(self) -> list[str]:
        found = []
        if self.rotated:
            found.append(
                f"{len(self.rotated)} image(s) stored turned or mirrored, to be shown by their EXIF orientation, which "
                "trainers ignore (they would learn them so): turn the pixels, or `loradrop submit --fix` does: "
                + _examples(f"{f.name} ({orientation_words(f.orientation or 1)})" for f in self.rotated)
            )
        if self.oversized:
            found.append(
                f"{len(self.oversized)} image(s) over {LARGEST_SIDE} px on a side (the trainer scales them down to "
                "about 1024 px; smaller copies upload and train faster): "
                + _examples(f"{f.name} {_size(f)}" for f in self.oversized)
            )
        if self.odd_names:
            found.append(
                f"{len(self.odd_names)} file name(s) that unzip tools and trainers may choke on: rename them in plain "
                f"ASCII, shorter: {_examples(self.odd_names)}"
            )
        return found

    def _image_warnings(self) -> list[str]:
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
            "rotated": len(self.rotated),
            "oversized": len(self.oversized),
            "max_side": LARGEST_SIDE,
            "odd_names": len(self.odd_names),
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
            "rotated_examples": [f"{f.name} orientation {f.orientation}" for f in self.rotated[:EXAMPLES]],
            "oversized_examples": [f"{f.name} {_size(f)}" for f in self.oversized[:EXAMPLES]],
            "odd_name_examples": self.odd_names[:EXAMPLES],
        }
        summary |= caption_summary(self.read_captions, self.trigger_word, EXAMPLES)
        return summary | {key: value for key, value in examples.items() if value}

    def read_stats(self) -> dict[str, int]:
        """What the survey read, for the job's `archive` stats: bytes of images and captions (their local headers
        included), and the range requests it made for both (a caption usually shares its neighbour's)."""
        per_image = [f.bytes_read for f in self.facts.values()]
        per_caption = [f.bytes_read for f in self.read_captions]
        return {
            "survey_bytes_read": sum(per_image) + sum(per_caption),
            "survey_range_reads": self.survey_requests,
            "survey_bytes_per_image_max": max(per_image, default=0),
            "survey_bytes_per_image_mean": sum(per_image) // len(per_image) if per_image else 0,
            "captions_read": len(per_caption),
            "caption_bytes_read": sum(per_caption),
            "caption_bytes_per_caption_max": max(per_caption, default=0),
        }


def _size(facts: ImageFacts) -> str:
    return f"{facts.width}x{facts.height}"


def _examples(items: Any) -> str:
    listed = [str(item)[:100] for item in items]
    more = f" and {len(listed) - EXAMPLES} more" if len(listed) > EXAMPLES else ""
    return ", ".join(listed[:EXAMPLES]) + more
