"""1. ZIP inspection by range reads, beside downloading the whole archive."""

from __future__ import annotations

import os
import struct
import tempfile
import time
import zipfile
import zlib
from pathlib import Path
from typing import Any

from loradrop_dev.bench.processes import GIB, MIB, download, median, s3_client, size_text, timed

# ----- 1. ZIP inspection -----
ENTRIES = 40


def write_stored_zip(path: Path, total: int) -> None:
    """A stored (uncompressed) ZIP of ENTRIES zero-filled images, `total` bytes or so, written sparsely."""
    entry_size = max(1, (total - ENTRIES * 200) // ENTRIES)
    zeros = bytes(min(entry_size, 64 * MIB))
    crc = 0
    remaining = entry_size
    while remaining:
        piece = zeros[: min(remaining, len(zeros))]
        crc = zlib.crc32(piece, crc)
        remaining -= len(piece)
    zip64 = entry_size >= 0xFFFFFFFF or total >= 0xFFFFFFFF
    directory = bytearray()
    with path.open("wb") as handle:
        for i in range(ENTRIES):
            name = f"photos/img_{i:03d}.png".encode()
            offset = handle.tell()
            extra = struct.pack("<HHQQ", 1, 16, entry_size, entry_size) if zip64 else b""
            size32 = 0xFFFFFFFF if zip64 else entry_size
            handle.write(
                struct.pack("<4sHHHHHLLLHH", b"PK\x03\x04", 45, 0, 0, 0, 0, crc, size32, size32, len(name), len(extra))
                + name
                + extra
            )
            handle.seek(entry_size, os.SEEK_CUR)  # a hole: zeros without writing them
            cextra = struct.pack("<HHQQQ", 1, 24, entry_size, entry_size, offset) if zip64 else b""
            directory += struct.pack(
                "<4sHHHHHHLLLHHHHHLL",
                b"PK\x01\x02",
                45,
                45,
                0,
                0,
                0,
                0,
                crc,
                size32,
                size32,
                len(name),
                len(cextra),
                0,
                0,
                0,
                0,
                0xFFFFFFFF if zip64 else offset,
            )
            directory += name + cextra
        cd_offset = handle.tell()
        handle.write(directory)
        if zip64:
            eocd64_offset = handle.tell()
            handle.write(
                struct.pack(
                    "<4sQHHLLQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, ENTRIES, ENTRIES, len(directory), cd_offset
                )
            )
            handle.write(struct.pack("<4sLQL", b"PK\x06\x07", 0, eocd64_offset, 1))
            handle.write(struct.pack("<4sHHHHLLH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0))
        else:
            handle.write(struct.pack("<4sHHHHLLH", b"PK\x05\x06", 0, 0, ENTRIES, ENTRIES, len(directory), cd_offset, 0))


class FileRangeReader:
    """Range reads from a local file: the inspector's own cost, without an S3 server in the way."""

    def __init__(self, path: Path) -> None:
        self.size = path.stat().st_size
        self._path = path

    def read(self, start: int, length: int) -> bytes:
        with self._path.open("rb") as handle:
            handle.seek(start)
            return handle.read(length)


def _pngs(archive_path: Path) -> int:
    with zipfile.ZipFile(archive_path) as archive:
        return sum(i.filename.endswith(".png") for i in archive.infolist())


def bench_inspection(endpoint: str, sizes: list[int], repeats: int) -> list[dict[str, Any]]:
    s3 = s3_client(endpoint)
    s3.create_bucket(Bucket="inspect")
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for size in sizes:
            rows.append(_inspection_row(s3, Path(scratch), size, repeats))
            print(f"  inspection {size_text(size)}: {rows[-1]}", flush=True)
    return rows


def _inspection_row(s3: Any, scratch: Path, size: int, repeats: int) -> dict[str, Any]:
    from loradrop.archive import ArchiveLimits, S3RangeReader, inspect_archive

    limits = ArchiveLimits(max_archive_bytes=8 * GIB, max_uncompressed_bytes=8 * GIB, max_compression_ratio=10**6)
    source = scratch / f"a-{size}.zip"
    write_stored_zip(source, size)
    actual = source.stat().st_size
    local, _ = timed(repeats, lambda: inspect_archive(FileRangeReader(source), limits))
    s3.upload_file(str(source), "inspect", source.name)
    source.unlink()
    # moto answers a range GET by reading the whole object: its time is the server's, not ours.
    started = time.perf_counter()
    s3.get_object(Bucket="inspect", Key=source.name, Range="bytes=0-0")["Body"].read()
    one_byte = time.perf_counter() - started
    readers = [S3RangeReader(s3, "inspect", source.name, actual) for _ in range(repeats)]
    unused = iter(readers)
    ours, reports = timed(repeats, lambda: inspect_archive(next(unused), limits))
    assert reports[-1].images == ENTRIES
    target = scratch / "download.zip"
    naive_repeats = repeats if size <= 100 * MIB else 1
    naive, found = timed(naive_repeats, lambda: _pngs(download(s3, "inspect", source.name, target)))
    target.unlink()
    assert found == [ENTRIES] * naive_repeats
    s3.delete_object(Bucket="inspect", Key=source.name)
    return {
        "size": actual,
        "bytes_read": readers[-1].bytes_read,
        "requests": readers[-1].requests,
        "ours_s": median(ours),
        "local_s": median(local),
        "moto_one_byte_s": one_byte,
        "naive_s": median(naive),
        "naive_bytes": actual,
        "repeats": repeats,
        "naive_repeats": naive_repeats,
    }
