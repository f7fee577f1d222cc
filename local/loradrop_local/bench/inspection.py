"""1. ZIP inspection by range reads, beside downloading the whole archive."""

from __future__ import annotations

import os
import shutil
import struct
import tempfile
import time
import zipfile
import zlib
from pathlib import Path
from typing import Any

from loradrop_local.bench.processes import GIB, MIB, median, s3_client, size_text

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


def bench_inspection(endpoint: str, sizes: list[int], repeats: int) -> list[dict[str, Any]]:
    from loradrop.archive import ArchiveLimits, S3RangeReader, inspect_archive

    s3 = s3_client(endpoint)
    s3.create_bucket(Bucket="inspect")
    limits = ArchiveLimits(max_archive_bytes=8 * GIB, max_uncompressed_bytes=8 * GIB, max_compression_ratio=10**6)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for size in sizes:
            source = Path(scratch) / f"a-{size}.zip"
            write_stored_zip(source, size)
            actual = source.stat().st_size
            local = []
            for _ in range(repeats):
                started = time.perf_counter()
                inspect_archive(FileRangeReader(source), limits)
                local.append(time.perf_counter() - started)
            s3.upload_file(str(source), "inspect", source.name)
            source.unlink()
            # moto answers a range GET by reading the whole object: its time is the server's, not ours.
            started = time.perf_counter()
            s3.get_object(Bucket="inspect", Key=source.name, Range="bytes=0-0")["Body"].read()
            one_byte = time.perf_counter() - started
            ours, reads, requests = [], 0, 0
            for _ in range(repeats):
                started = time.perf_counter()
                reader = S3RangeReader(s3, "inspect", source.name, actual)
                report = inspect_archive(reader, limits)
                ours.append(time.perf_counter() - started)
                reads, requests = reader.bytes_read, reader.requests
            assert report.images == ENTRIES
            naive = []
            naive_repeats = repeats if size <= 100 * MIB else 1
            for _ in range(naive_repeats):
                started = time.perf_counter()
                target = Path(scratch) / "download.zip"
                # One plain GET, streamed to disk (download_file's ranged GETs are slow on moto, see above).
                body = s3.get_object(Bucket="inspect", Key=source.name)["Body"]
                with target.open("wb") as handle:
                    shutil.copyfileobj(body, handle, 8 * MIB)
                with zipfile.ZipFile(target) as archive:
                    images = [i for i in archive.infolist() if i.filename.endswith(".png")]
                target.unlink()
                naive.append(time.perf_counter() - started)
            assert len(images) == ENTRIES
            s3.delete_object(Bucket="inspect", Key=source.name)
            rows.append(
                {
                    "size": actual,
                    "bytes_read": reads,
                    "requests": requests,
                    "ours_s": median(ours),
                    "local_s": median(local),
                    "moto_one_byte_s": one_byte,
                    "naive_s": median(naive),
                    "naive_bytes": actual,
                    "repeats": repeats,
                    "naive_repeats": naive_repeats,
                }
            )
            print(f"  inspection {size_text(size)}: {rows[-1]}", flush=True)
    return rows
