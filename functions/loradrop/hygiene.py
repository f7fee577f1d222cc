"""Archive hygiene: what zip tools leave in an archive besides the user's files, names that trip tools up,
and the words for an image's EXIF orientation. Pure rules on names and numbers; `archive` and `dataset`
apply them."""

from __future__ import annotations

# Files that operating systems and zip tools add beside the user's own: macOS Archive Utility's
# `__MACOSX/` tree of AppleDouble `._name` files, Finder's `.DS_Store`, Windows Explorer's thumbnail caches.
JUNK_FOLDERS = frozenset({"__macosx"})
JUNK_FILES = frozenset({"thumbs.db", "ehthumbs.db", "desktop.ini"})
LONG_NAME = 128  # characters in an entry's path: some unzip tools and trainers' loaders stop short of it
LONG_PART = 255  # bytes in one path component: most file systems refuse longer names
LARGEST_SIDE = 4096  # px: FLUX trainers resize to ~1024 px buckets; far larger only costs upload and time

ORIENTATIONS = {
    2: "mirrored",
    3: "upside down",
    4: "mirrored upside down",
    5: "mirrored and turned 90°",
    6: "turned 90° (shown turned clockwise)",
    7: "mirrored and turned 270°",
    8: "turned 270° (shown turned counter-clockwise)",
}


def parts_of(name: str) -> list[str]:
    return [part for part in name.replace("\\", "/").split("/") if part]


def is_junk(name: str) -> bool:
    """An entry a zip tool or the operating system added: never an image or a caption. Hidden files count
    too (`._photo.jpg` is AppleDouble metadata, not a photo)."""
    parts = parts_of(name)
    if not parts:
        return False
    return (
        any(part.lower() in JUNK_FOLDERS for part in parts)
        or parts[-1].startswith(".")
        or parts[-1].lower() in JUNK_FILES
    )


def junk_label(names: list[str]) -> str:
    """What kinds of junk were found, in a few words: `__MACOSX/…, .DS_Store`."""
    kinds: dict[str, None] = {}  # in the order found, once each
    for name in names:
        parts = parts_of(name)
        if any(part.lower() in JUNK_FOLDERS for part in parts):
            kinds["__MACOSX/…"] = None
        elif parts[-1].startswith("._"):
            kinds["._* AppleDouble files"] = None
        elif parts[-1].lower() in JUNK_FILES or parts[-1] == ".DS_Store":
            kinds[parts[-1]] = None
        else:
            kinds["hidden files"] = None
    return ", ".join(kinds)


def name_problem(name: str) -> str | None:
    """Why an entry's name may break the trainer's tools, or None."""
    if any(len(part.encode("utf-8", "surrogateescape")) > LONG_PART for part in parts_of(name)):
        return f"a name part over {LONG_PART} bytes"
    if not name.isascii():
        return "non-ASCII"
    if len(name) > LONG_NAME:
        return f"{len(name)} characters"
    return None


def shortened(name: str, most: int = 80) -> str:
    """A long name with its middle left out, so its start and its extension both show."""
    return name if len(name) <= most else f"{name[: most - 21]}…{name[-20:]}"


def orientation_words(orientation: int) -> str:
    return f"{ORIENTATIONS.get(orientation, 'turned')}, EXIF orientation {orientation}"
