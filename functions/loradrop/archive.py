"""Inspect a ZIP by range reads — never the whole file — and apply loradrop's rules to its entries.

The standard library's `zipfile` does the parsing (ZIP64, comments, prepended data, Unicode names)
over `RangeFile`, a seekable file that fetches only the bytes it is asked for: the last 64 KiB in
one ranged GET (end records and, for ordinary archives, the whole central directory), anything else
on demand, within a byte budget. This module keeps the policy: which end record to trust, names,
symbolic links, encryption, compression methods, sizes and ratios. The same file later lets the
dataset survey read the first bytes of each image through `ZipFile.open`.
"""

from __future__ import annotations

import posixpath
import re
import struct
import threading
import zipfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loradrop.hygiene import is_junk, junk_label, shortened
from loradrop.ranges import TAIL_BYTES, RangeFile, RangeReader, ReadBudgetExceeded

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")
CAPTION_EXTENSION = ".txt"
JUNK_EXAMPLES = 5
FEW_IMAGES = 4  # WaveSpeed's trainer page: "try to use at least 4 images, in general the more the better"

_EOCD = b"PK\x05\x06"
_EOCD_SIZE = 22
_LOCATOR_SIZE = 20
_ZIP64_EOCD_SIZE = 56
_UNIX = 3
_SYMLINK = 0o120000
_DRIVE = re.compile(r"^[A-Za-z]:")


class ArchiveRejected(ValueError):
    """The upload cannot be used for training; the message tells the user what to fix."""


@dataclass(frozen=True)
class ArchiveLimits:
    max_archive_bytes: int = 2 * 1024**3
    max_entries: int = 2000
    max_uncompressed_bytes: int = 4 * 1024**3
    max_compression_ratio: int = 100
    # A ratio check on tiny entries would flag ordinary text files; bombs are large by definition.
    ratio_floor_bytes: int = 1024 * 1024

    @property
    def max_central_directory_bytes(self) -> int:
        return max(1024 * 1024, self.max_entries * 1024)


@dataclass(frozen=True)
class ArchiveReport:
    entries: int
    images: int
    captions: int
    ignored: int
    compressed_bytes: int
    uncompressed_bytes: int
    trailing_bytes: int = 0
    junk: tuple[str, ...] = ()  # entries zip tools and operating systems add (never images or captions)

    @property
    def warnings(self) -> list[str]:
        """What the archive itself is worth saying (the dataset survey judges the images)."""
        found = []
        if self.trailing_bytes:
            found.append(f"{self.trailing_bytes:,} bytes after the end of the ZIP were ignored (as zip tools do)")
        if self.junk:
            found.append(
                f"{len(self.junk)} junk entries left by zip tools ({junk_label(list(self.junk))}): ignored; "
                "`loradrop submit --fix` leaves them out"
            )
        return found

    def as_dict(self) -> dict[str, Any]:
        """The job's `archive` counts. `ignored` counts the user's other files (neither image nor caption);
        `junk` the entries zip tools added, named in `junk_examples`."""
        return {
            "entries": self.entries,
            "images": self.images,
            "captions": self.captions,
            "ignored": self.ignored,
            "junk": len(self.junk),
            "compressed_bytes": self.compressed_bytes,
            "uncompressed_bytes": self.uncompressed_bytes,
        } | ({"junk_examples": [shortened(name) for name in self.junk[:JUNK_EXAMPLES]]} if self.junk else {})


@dataclass
class Archive:
    """An inspected archive: its report, and what a closer look at the images needs."""

    report: ArchiveReport
    zip: zipfile.ZipFile
    file: RangeFile
    images: list[zipfile.ZipInfo] = field(default_factory=list)
    captions: list[zipfile.ZipInfo] = field(default_factory=list)


def _mib(n: int) -> str:
    return f"{n / 1024**2:,.1f} MiB" if n < 1024**3 else f"{n / 1024**3:,.2f} GiB"


def _shown(name: str) -> str:
    return repr(name if len(name) <= 80 else name[:77] + "...")


def stem_of(name: str) -> str:
    """An entry's path without its extension, lower-cased: how an image and its caption pair up."""
    return posixpath.splitext("/".join(p for p in name.replace("\\", "/").split("/") if p).lower())[0]


# Compression methods the trainer can be expected to unpack: stored and deflate are what every zip
# tool writes and every reader (CPython's zipfile, Info-ZIP, libarchive) reads. Others need optional
# codecs or are not supported by common readers at all.
SUPPORTED_METHODS = {0: "stored", 8: "deflate"}
METHOD_NAMES = {
    1: "shrink",
    6: "implode",
    9: "deflate64",
    12: "bzip2",
    14: "lzma",
    93: "zstd",
    95: "xz",
    96: "jpeg",
    97: "wavpack",
    98: "ppmd",
}

_NOT_A_ZIP = (
    "not a ZIP archive (no end-of-central-directory record): upload a .zip made with a zip tool, "
    "e.g. `zip -r photos.zip photos/`; a truncated upload looks like this too"
)


def _end_record(tail: bytes) -> tuple[int, int] | None:
    """Where the end-of-central-directory record is, and how many bytes follow it and its comment.

    An end record whose comment reaches exactly to the end of the file wins (a signature inside a
    comment cannot fool it, where zipfile would take the last signature it finds). Failing that, like
    CPython's zipfile and Info-ZIP, the last complete record is used and the bytes after it are
    ignored (some uploaders and tools append data)."""
    last_complete = None
    position = len(tail)
    while (position := tail.rfind(_EOCD, 0, position)) >= 0:
        if len(tail) - position >= _EOCD_SIZE:
            (comment,) = struct.unpack("<H", tail[position + 20 : position + 22])
            end = position + _EOCD_SIZE + comment
            if end == len(tail):
                return position, 0
            if last_complete is None and end < len(tail):
                last_complete = (position, len(tail) - end)
    return last_complete


def _open_zip(reader: RangeReader, limits: ArchiveLimits) -> tuple[zipfile.ZipFile, RangeFile, int]:
    """zipfile over the archive as far as its trusted end record; the bytes after it are counted."""
    file = RangeFile(reader, budget=TAIL_BYTES + limits.max_central_directory_bytes + _ZIP64_EOCD_SIZE)
    tail_start, tail = file.tail()
    found = _end_record(tail)
    if found is None:
        raise ArchiveRejected(_NOT_A_ZIP)
    position, trailing = found
    disk, cd_disk, _, entries = struct.unpack("<4xHHHH", tail[position : position + 12])
    if disk != 0 or cd_disk != 0:
        raise ArchiveRejected("split (multi-part) ZIP archives are not supported: upload a single .zip file")
    if entries != 0xFFFF and entries > limits.max_entries:  # 0xFFFF: the ZIP64 record has the count
        raise _too_many(entries, limits)
    # zipfile sees the archive end with the end record: a comment cut off, or appended bytes, cannot mislead it.
    file.end = tail_start + position + _EOCD_SIZE
    try:
        return zipfile.ZipFile(file), file, trailing
    except ReadBudgetExceeded:
        raise ArchiveRejected(
            f"the ZIP's directory is larger than {_mib(limits.max_central_directory_bytes)}, implausibly large "
            f"for at most {limits.max_entries:,} entries: re-create the archive"
        ) from None
    except (zipfile.BadZipFile, NotImplementedError, ValueError, struct.error, EOFError, OverflowError) as err:
        # A BadZipFile, an unknown ZIP version, a name marked UTF-8 that is not: zipfile's own words.
        raise ArchiveRejected(
            f"the ZIP is truncated or corrupt ({str(err)[:120] or type(err).__name__}): upload it again; if that "
            "does not help, re-create it with a zip tool"
        ) from None


def _too_many(entries: int, limits: ArchiveLimits) -> ArchiveRejected:
    return ArchiveRejected(
        f"the ZIP has {entries:,} entries, over the limit of {limits.max_entries:,}: "
        "training needs tens of images, not thousands"
    )


def inspect_archive(reader: RangeReader, limits: ArchiveLimits) -> ArchiveReport:
    """Validate a training ZIP; raise ArchiveRejected with a reason a user can act on."""
    return open_archive(reader, limits).report


def open_archive(reader: RangeReader, limits: ArchiveLimits) -> Archive:
    """Validate a training ZIP and keep it open for a closer look; raise ArchiveRejected with a reason."""
    if reader.size == 0:
        raise ArchiveRejected("the file is empty (0 bytes): upload a ZIP of your training images")
    if reader.size > limits.max_archive_bytes:
        raise ArchiveRejected(
            f"the archive is {_mib(reader.size)}, over the limit of {_mib(limits.max_archive_bytes)}: "
            "use fewer or smaller images"
        )
    archive, file, trailing = _open_zip(reader, limits)
    infos = archive.infolist()
    if not infos:
        raise ArchiveRejected("the ZIP contains no files: add your training images")
    if len(infos) > limits.max_entries:
        raise _too_many(len(infos), limits)
    images, captions, junk, ignored, (compressed, uncompressed) = _check_entries(infos, archive.start_dir, limits)
    image_stems = {stem_of(info.filename) for info in images}
    report = ArchiveReport(
        entries=len(infos),
        images=len(images),
        captions=sum(1 for info in captions if stem_of(info.filename) in image_stems),
        ignored=ignored,
        compressed_bytes=compressed,
        uncompressed_bytes=uncompressed,
        trailing_bytes=trailing,
        junk=tuple(junk),
    )
    return Archive(report=report, zip=archive, file=file, images=images, captions=captions)


def _check_entries(
    infos: list[zipfile.ZipInfo], directory_start: int, limits: ArchiveLimits
) -> tuple[list[zipfile.ZipInfo], list[zipfile.ZipInfo], list[str], int, tuple[int, int]]:
    """Images, captions, junk, how many other files, and the compressed and uncompressed bytes in all."""
    images: list[zipfile.ZipInfo] = []
    captions: list[zipfile.ZipInfo] = []
    junk: list[str] = []
    ignored = compressed_total = uncompressed_total = 0
    for info in infos:
        name = info.filename
        _check_name(info)
        if name.endswith("/"):
            continue
        encrypted = _check_layout(info, directory_start)
        parts = [p for p in name.replace("\\", "/").split("/") if p]
        if not parts:
            raise ArchiveRejected("the ZIP has an entry without a name: re-create the archive")
        if is_junk(name):
            junk.append(name)
            continue
        if encrypted:
            raise ArchiveRejected(f"entry {_shown(name)} is encrypted: upload an archive without a password")
        usize, csize = info.file_size, info.compress_size
        compressed_total += csize
        uncompressed_total += usize
        if usize >= limits.ratio_floor_bytes and usize > csize * limits.max_compression_ratio:
            raise ArchiveRejected(
                f"entry {_shown(name)} expands {usize // max(csize, 1):,}x ({_mib(usize)}): "
                "this looks like a ZIP bomb; upload ordinary image files"
            )
        if uncompressed_total > limits.max_uncompressed_bytes:
            raise ArchiveRejected(
                f"the files add up to more than {_mib(limits.max_uncompressed_bytes)} uncompressed: "
                "use fewer or smaller images"
            )
        extension = posixpath.splitext(parts[-1].lower())[1]
        if extension in IMAGE_EXTENSIONS:
            images.append(info)
        elif extension == CAPTION_EXTENSION:
            captions.append(info)
        else:
            ignored += 1
    if uncompressed_total >= limits.ratio_floor_bytes and (
        uncompressed_total > max(compressed_total, 1) * limits.max_compression_ratio
    ):
        raise ArchiveRejected("the archive expands more than a collection of images can: this looks like a ZIP bomb")
    if not images:
        raise ArchiveRejected(
            f"no images found ({', '.join(IMAGE_EXTENSIONS)}) among {len(infos)} entries: "
            "put your training photos in the ZIP (folders are fine)"
        )
    return images, captions, junk, ignored, (compressed_total, uncompressed_total)


def _check_layout(info: zipfile.ZipInfo, directory_start: int) -> bool:
    """An entry inside the archive, compressed in a way the trainer unpacks; whether it is encrypted."""
    name = info.filename
    if info.header_offset < 0 or info.header_offset + info.compress_size > directory_start:
        raise ArchiveRejected(
            f"the ZIP is truncated or corrupt (entry {_shown(name)} lies outside the archive): upload it again"
        )
    encrypted = bool(info.flag_bits & 0x1 or info.compress_type == 99)
    if info.compress_type not in SUPPORTED_METHODS and not encrypted:
        method = info.compress_type
        raise ArchiveRejected(
            f"entry {_shown(name)} is compressed with method {method} ({METHOD_NAMES.get(method, 'unknown')}), "
            "which the trainer may not unpack: re-create the ZIP with standard compression "
            "(e.g. `zip -r photos.zip photos/`)"
        )
    return encrypted


def _check_name(info: zipfile.ZipInfo) -> None:
    name = info.filename
    unified = name.replace("\\", "/")
    if unified.startswith("/") or _DRIVE.match(unified):
        raise ArchiveRejected(f"entry {_shown(name)} has an absolute path: zip the folder with relative paths")
    if ".." in unified.split("/"):
        raise ArchiveRejected(f"entry {_shown(name)} climbs out of the archive with '..': remove it")
    if "\x00" in info.orig_filename:  # zipfile cuts the name at the NUL; the trainer's unzip may not
        raise ArchiveRejected(f"entry {_shown(info.orig_filename)} has a NUL byte in its name: rename it")
    if info.create_system == _UNIX and (info.external_attr >> 16) & 0o170000 == _SYMLINK:
        raise ArchiveRejected(
            f"entry {_shown(name)} is a symbolic link: zip the real files (e.g. `zip -r` without `--symlinks`)"
        )


class S3RangeReader:
    """Range GETs against one S3 object version, counting what it reads (from several threads too)."""

    def __init__(self, s3: S3Client, bucket: str, key: str, size: int, version_id: str | None = None) -> None:
        self.size = size
        self.bytes_read = 0
        self.requests = 0
        self._count = threading.Lock()
        self._s3 = s3
        self._target: dict[str, Any] = {"Bucket": bucket, "Key": key} | (
            {"VersionId": version_id} if version_id else {}
        )

    def read(self, start: int, length: int) -> bytes:
        if length <= 0:
            return b""
        answer = self._s3.get_object(**self._target, Range=f"bytes={start}-{start + length - 1}")
        data: bytes = answer["Body"].read()
        with self._count:
            self.requests += 1
            self.bytes_read += len(data)
        return data
