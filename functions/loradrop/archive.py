"""Inspect a ZIP by range reads of its end records and central directory — never the whole file.

The central directory lists every entry's name, sizes, flags and attributes, which is all that
validation needs: a multi-GB archive costs a few small reads.
"""

from __future__ import annotations

import posixpath
import re
import struct
from dataclasses import dataclass, replace
from typing import Any, Protocol

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")
CAPTION_EXTENSION = ".txt"
FEW_IMAGES = 4

_EOCD = b"PK\x05\x06"
_ZIP64_LOCATOR = b"PK\x06\x07"
_ZIP64_EOCD = b"PK\x06\x06"
_CENTRAL_HEADER = b"PK\x01\x02"
_EOCD_SIZE = 22
_LOCATOR_SIZE = 20
_ZIP64_EOCD_SIZE = 56
_CENTRAL_HEADER_SIZE = 46
_TAIL_BYTES = _EOCD_SIZE + 0xFFFF + _LOCATOR_SIZE  # the EOCD may be followed by a 64 KiB comment
_UNIX = 3
_SYMLINK = 0o120000
_DRIVE = re.compile(r"^[A-Za-z]:")


class RangeReader(Protocol):
    size: int

    def read(self, start: int, length: int) -> bytes: ...


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

    @property
    def warnings(self) -> list[str]:
        found = []
        if self.images < FEW_IMAGES:
            found.append(
                f"only {self.images} image(s): LoRA training usually wants at least {FEW_IMAGES}, ideally 10-30"
            )
        if self.trailing_bytes:
            found.append(f"{self.trailing_bytes:,} bytes after the end of the ZIP were ignored (as zip tools do)")
        return found

    def as_dict(self) -> dict[str, Any]:
        return {
            "entries": self.entries,
            "images": self.images,
            "captions": self.captions,
            "ignored": self.ignored,
            "compressed_bytes": self.compressed_bytes,
            "uncompressed_bytes": self.uncompressed_bytes,
        }


def _mib(n: int) -> str:
    return f"{n / 1024**2:,.1f} MiB" if n < 1024**3 else f"{n / 1024**3:,.2f} GiB"


def _shown(name: str) -> str:
    return repr(name if len(name) <= 80 else name[:77] + "...")


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


@dataclass(frozen=True)
class _Directory:
    entries: int
    size: int
    offset: int
    trailing_bytes: int = 0


def _find_directory(reader: RangeReader) -> tuple[_Directory, bytes, int]:
    """Locate the central directory from the end records; return it, the tail bytes and their offset."""
    tail_start = max(0, reader.size - _TAIL_BYTES)
    tail = reader.read(tail_start, reader.size - tail_start)
    found = _end_record(tail)
    if found is None:
        raise ArchiveRejected(
            "not a ZIP archive (no end-of-central-directory record): upload a .zip made with a zip tool, "
            "e.g. `zip -r photos.zip photos/`; a truncated upload looks like this too"
        )
    position, trailing = found
    (disk, cd_disk, _, entries, size, offset, _comment) = struct.unpack(
        "<4xHHHHLLH", tail[position : position + _EOCD_SIZE]
    )
    if disk != 0 or cd_disk != 0:
        raise ArchiveRejected("split (multi-part) ZIP archives are not supported: upload a single .zip file")
    directory = _Directory(entries, size, offset, trailing)
    locator_at = position - _LOCATOR_SIZE
    if locator_at >= 0 and tail[locator_at : locator_at + 4] == _ZIP64_LOCATOR:
        (zip64_offset,) = struct.unpack("<8xQ4x", tail[locator_at : locator_at + _LOCATOR_SIZE])
        if zip64_offset + _ZIP64_EOCD_SIZE > reader.size:
            raise ArchiveRejected("the ZIP is truncated or corrupt (ZIP64 record out of range): upload it again")
        record = _slice(reader, tail, tail_start, zip64_offset, _ZIP64_EOCD_SIZE)
        if record[:4] != _ZIP64_EOCD:
            raise ArchiveRejected("the ZIP is corrupt (bad ZIP64 end record): re-create the archive")
        (entries64, size64, offset64) = struct.unpack("<32xQQQ", record[:_ZIP64_EOCD_SIZE])
        directory = _Directory(entries64, size64, offset64, trailing)
    if directory.offset + directory.size > tail_start + position:
        raise ArchiveRejected("the ZIP is truncated or corrupt (its directory points past the end): upload it again")
    return directory, tail, tail_start


def _end_record(tail: bytes) -> tuple[int, int] | None:
    """Where the end-of-central-directory record is, and how many bytes follow it and its comment.

    An end record whose comment reaches exactly to the end of the file wins (a signature inside a
    comment cannot fool it). Failing that, like CPython's zipfile and Info-ZIP, the last complete
    record is used and the bytes after it are ignored (some uploaders and tools append data)."""
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


def _slice(reader: RangeReader, tail: bytes, tail_start: int, start: int, length: int) -> bytes:
    """Bytes [start, start+length), from the tail already read where possible."""
    if start >= tail_start:
        return tail[start - tail_start : start - tail_start + length]
    return reader.read(start, length)


def _zip64_sizes(extra: bytes, usize: int, csize: int) -> tuple[int, int]:
    """Real sizes from the ZIP64 extra field for the values that were set to 0xFFFFFFFF."""
    i = 0
    while i + 4 <= len(extra):
        tag, length = struct.unpack("<HH", extra[i : i + 4])
        data = extra[i + 4 : i + 4 + length]
        if tag == 0x0001:
            j = 0
            if usize == 0xFFFFFFFF and j + 8 <= len(data):
                (usize,) = struct.unpack("<Q", data[j : j + 8])
                j += 8
            if csize == 0xFFFFFFFF and j + 8 <= len(data):
                (csize,) = struct.unpack("<Q", data[j : j + 8])
            break
        i += 4 + length
    return usize, csize


def inspect_archive(reader: RangeReader, limits: ArchiveLimits) -> ArchiveReport:
    """Validate a training ZIP; raise ArchiveRejected with a reason a user can act on."""
    if reader.size == 0:
        raise ArchiveRejected("the file is empty (0 bytes): upload a ZIP of your training images")
    if reader.size > limits.max_archive_bytes:
        raise ArchiveRejected(
            f"the archive is {_mib(reader.size)}, over the limit of {_mib(limits.max_archive_bytes)}: "
            "use fewer or smaller images"
        )
    directory, tail, tail_start = _find_directory(reader)
    if directory.entries == 0:
        raise ArchiveRejected("the ZIP contains no files: add your training images")
    if directory.entries > limits.max_entries:
        raise ArchiveRejected(
            f"the ZIP has {directory.entries:,} entries, over the limit of {limits.max_entries:,}: "
            "training needs tens of images, not thousands"
        )
    if directory.size > limits.max_central_directory_bytes:
        raise ArchiveRejected("the ZIP's directory is implausibly large: re-create the archive")
    listing = _slice(reader, tail, tail_start, directory.offset, directory.size)
    return replace(_check_entries(listing, directory.entries, limits), trailing_bytes=directory.trailing_bytes)


def _check_entries(listing: bytes, count: int, limits: ArchiveLimits) -> ArchiveReport:  # noqa: PLR0912 - one pass over the central directory applies every entry rule
    images: set[str] = set()
    captions: list[str] = []
    ignored = compressed_total = uncompressed_total = 0
    position = 0
    for _ in range(count):
        header = listing[position : position + _CENTRAL_HEADER_SIZE]
        if len(header) < _CENTRAL_HEADER_SIZE or header[:4] != _CENTRAL_HEADER:
            raise ArchiveRejected("the ZIP is corrupt (bad central directory entry): re-create the archive")
        (made_by, flags, method, csize, usize, name_len, extra_len, comment_len, external) = struct.unpack(
            "<4xH2xHH8xLLHHH4xL4x", header
        )
        name_start = position + _CENTRAL_HEADER_SIZE
        raw_name = listing[name_start : name_start + name_len]
        extra = listing[name_start + name_len : name_start + name_len + extra_len]
        position = name_start + name_len + extra_len + comment_len
        if len(raw_name) != name_len:
            raise ArchiveRejected("the ZIP is corrupt (entry name cut short): re-create the archive")
        name = raw_name.decode("utf-8" if flags & 0x800 else "cp437", errors="replace")
        usize, csize = _zip64_sizes(extra, usize, csize)
        _check_name(name, made_by, external)
        if name.endswith("/"):
            continue
        if method not in SUPPORTED_METHODS and method != 99 and not flags & 0x1:
            kind = METHOD_NAMES.get(method, "unknown")
            raise ArchiveRejected(
                f"entry {_shown(name)} is compressed with method {method} ({kind}), which the trainer may not "
                "unpack: re-create the ZIP with standard compression (e.g. `zip -r photos.zip photos/`)"
            )
        parts = [p for p in name.replace("\\", "/").split("/") if p]
        if not parts:
            raise ArchiveRejected("the ZIP has an entry without a name: re-create the archive")
        if "__MACOSX" in parts or parts[-1].startswith("."):
            ignored += 1
            continue
        if flags & 0x1 or method == 99:
            raise ArchiveRejected(f"entry {_shown(name)} is encrypted: upload an archive without a password")
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
        path = "/".join(parts).lower()
        stem, ext = posixpath.splitext(path)
        if ext in IMAGE_EXTENSIONS:
            images.add(stem)
        elif ext == CAPTION_EXTENSION:
            captions.append(stem)
        else:
            ignored += 1
    if uncompressed_total >= limits.ratio_floor_bytes and (
        uncompressed_total > max(compressed_total, 1) * limits.max_compression_ratio
    ):
        raise ArchiveRejected("the archive expands more than a collection of images can: this looks like a ZIP bomb")
    if not images:
        raise ArchiveRejected(
            f"no images found ({', '.join(IMAGE_EXTENSIONS)}) among {count} entries: "
            "put your training photos in the ZIP (folders are fine)"
        )
    return ArchiveReport(
        entries=count,
        images=len(images),
        captions=sum(1 for stem in captions if stem in images),
        ignored=ignored,
        compressed_bytes=compressed_total,
        uncompressed_bytes=uncompressed_total,
    )


def _check_name(name: str, made_by: int, external: int) -> None:
    unified = name.replace("\\", "/")
    if unified.startswith("/") or _DRIVE.match(unified):
        raise ArchiveRejected(f"entry {_shown(name)} has an absolute path: zip the folder with relative paths")
    if ".." in unified.split("/"):
        raise ArchiveRejected(f"entry {_shown(name)} climbs out of the archive with '..': remove it")
    if "\x00" in name:
        raise ArchiveRejected(f"entry {_shown(name)} has a NUL byte in its name: rename it")
    if made_by >> 8 == _UNIX and (external >> 16) & 0o170000 == _SYMLINK:
        raise ArchiveRejected(
            f"entry {_shown(name)} is a symbolic link: zip the real files (e.g. `zip -r` without `--symlinks`)"
        )


class S3RangeReader:
    """Range GETs against one S3 object version, counting what it reads."""

    def __init__(self, s3: Any, bucket: str, key: str, size: int, version_id: str | None = None) -> None:
        self.size = size
        self.bytes_read = 0
        self.requests = 0
        self._s3 = s3
        self._target = {"Bucket": bucket, "Key": key} | ({"VersionId": version_id} if version_id else {})

    def read(self, start: int, length: int) -> bytes:
        if length <= 0:
            return b""
        answer = self._s3.get_object(**self._target, Range=f"bytes={start}-{start + length - 1}")
        data: bytes = answer["Body"].read()
        self.requests += 1
        self.bytes_read += len(data)
        return data
