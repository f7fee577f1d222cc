"""Captions: what each `.txt` beside an image says, judged from its first KiB.

WaveSpeed's trainer uses the captions when an archive has them and then ignores `trigger_word`: a set whose
captions never mention the trigger word trains a LoRA that does not answer to it. Each caption is read only
as far as `CAPTION_BYTES` inflated bytes (the survey fetches them with the images' first bytes); a caption
longer than that counts as mentioning the trigger word only if its first KiB does — FLUX's CLIP text encoder
reads only the first 77 tokens, well inside it.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from typing import Any

from loradrop.hygiene import shortened

CAPTION_BYTES = 1024  # inflated bytes read per caption


@dataclass(frozen=True)
class CaptionFacts:
    name: str
    empty: bool
    utf8: bool
    mentions: bool | None = None  # the trigger word, in the caption's first KiB (None: none to look for)
    bytes_read: int = 0  # of the archive, local header included


def decode_caption(data: bytes, *, final: bool = True) -> tuple[str, bool]:
    """The text, and whether it was UTF-8 (a byte-order mark allowed). `final=False` says more bytes follow:
    a character cut at the end is then not an error. Text that is not UTF-8 is read as Windows-1252 (Latin-1
    where that has no character), what a Western editor most likely saved."""
    try:
        return codecs.getincrementaldecoder("utf-8-sig")().decode(data, final=final), True
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), False
    except UnicodeDecodeError:
        return data.decode("latin-1"), False


def as_utf8(data: bytes) -> bytes | None:
    """A caption re-encoded as UTF-8 (without a byte-order mark), or None when it already is UTF-8."""
    text, utf8 = decode_caption(data)
    return None if utf8 else text.encode("utf-8")


def mentions(text: str, word: str) -> bool:
    """Whether `word` appears in `text` as a word of its own, whatever the case: "zxq," and "ZXQ's" do,
    "zxqs" does not."""
    return re.search(rf"(?<!\w){re.escape(word)}(?!\w)", text, re.IGNORECASE) is not None


def caption_facts(name: str, data: bytes, *, size: int, trigger_word: str | None, bytes_read: int) -> CaptionFacts:
    """A caption's facts from its first bytes (`size` is its whole inflated size)."""
    cut = size > len(data)
    text, utf8 = decode_caption(data, final=not cut)
    return CaptionFacts(
        name,
        empty=not cut and not text.strip(),
        utf8=utf8,
        mentions=mentions(text, trigger_word) if trigger_word else None,
        bytes_read=bytes_read,
    )


def _with_text(facts: list[CaptionFacts]) -> list[CaptionFacts]:
    return [f for f in facts if not f.empty]


def _missing_trigger(facts: list[CaptionFacts]) -> list[str]:
    return [f.name for f in _with_text(facts) if f.mentions is False]


def caption_fatal(facts: list[CaptionFacts], trigger_word: str | None) -> list[str]:
    """Caption findings that ruin a training (a `strict` policy rejects the set for these)."""
    if facts and all(f.empty for f in facts):
        return [f"all {len(facts)} caption(s) are empty: write captions, or remove the .txt files"]
    with_text = _with_text(facts)
    if trigger_word and with_text and len(_missing_trigger(facts)) == len(with_text):
        return [
            f"no caption mentions the trigger word {trigger_word!r}: with captions WaveSpeed ignores trigger_word, "
            f"so the LoRA would not answer to it: put {trigger_word!r} in every caption, or remove the captions "
            "to train on the trigger word alone"
        ]
    return []


def caption_warnings(facts: list[CaptionFacts], trigger_word: str | None, examples: Any) -> list[str]:
    """Findings short of fatal; `examples` formats a list of names."""
    found = []
    empty = [f.name for f in facts if f.empty]
    if empty and len(empty) < len(facts):
        found.append(f"{len(empty)} empty caption(s): those images train without text; write them: {examples(empty)}")
    not_utf8 = [f.name for f in facts if not f.utf8]
    if not_utf8:
        found.append(
            f"{len(not_utf8)} caption(s) not UTF-8 (the trainer may misread them): save them as UTF-8, or "
            f"`loradrop submit --fix` re-encodes them: {examples(not_utf8)}"
        )
    missing, with_text = _missing_trigger(facts), _with_text(facts)
    if trigger_word and missing and len(missing) < len(with_text):
        found.append(
            f"{len(missing)} of {len(with_text)} caption(s) do not mention the trigger word {trigger_word!r} (with "
            "captions WaveSpeed ignores trigger_word: the LoRA learns it only from those that do): "
            f"{examples(missing)}"
        )
    return found


def caption_summary(facts: list[CaptionFacts], trigger_word: str | None, shown: int) -> dict[str, Any]:
    """The caption counts kept in the job's `dataset`, with up to `shown` examples of each finding."""
    summary: dict[str, Any] = {
        "captions_read": len(facts),
        "empty_captions": sum(f.empty for f in facts),
        "non_utf8_captions": sum(not f.utf8 for f in facts),
    }
    if trigger_word and facts:
        with_text = _with_text(facts)
        summary |= {
            "captions_with_text": len(with_text),
            "captions_mentioning_trigger": len(with_text) - len(_missing_trigger(facts)),
        }
    examples = {
        "empty_caption_examples": [f.name for f in facts if f.empty],
        "non_utf8_caption_examples": [f.name for f in facts if not f.utf8],
        "missing_trigger_examples": _missing_trigger(facts) if trigger_word else [],
    }
    return summary | {key: [shortened(name) for name in names[:shown]] for key, names in examples.items() if names}
