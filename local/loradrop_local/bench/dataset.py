"""6. The dataset survey vs image count, beside the naive way: download the ZIP and open every image."""

from __future__ import annotations

import io
import random
import shutil
import tempfile
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

from loradrop_local.bench.inspection import FileRangeReader
from loradrop_local.bench.processes import GIB, MIB, median, s3_client
from loradrop_local.dataset import photo

COUNTS = [10, 100, 1000]
# Phone-like photos: 768x576 JPEGs (no smaller than trainers want) of a photo's entropy, one in ten with
# a 48 KiB EXIF block before its frame header (the survey's second step), captions for all.
WIDTH, HEIGHT, EXIF_EVERY, EXIF_BYTES = 768, 576, 10, 48 * 1024


def _with_exif(jpeg: bytes) -> bytes:
    block = b"Exif\x00\x00" + random.Random(len(jpeg)).randbytes(EXIF_BYTES - 6)
    return jpeg[:2] + b"\xff\xe1" + (len(block) + 2).to_bytes(2, "big") + block + jpeg[2:]


def write_dataset_zip(path: Path, count: int) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for i in range(count):
            image = photo(WIDTH, HEIGHT, i)
            archive.writestr(f"set/img_{i:04d}.jpg", _with_exif(image) if i % EXIF_EVERY == 0 else image)
            archive.writestr(f"set/img_{i:04d}.txt", f"a photo of zxq, number {i}")


def _naive(data_path: Path) -> int:
    """Read every image's size the usual way: Pillow on each file of the (downloaded) archive."""
    from PIL import Image

    sized = 0
    with zipfile.ZipFile(data_path) as archive:
        for info in archive.infolist():
            if info.filename.endswith(".jpg"):
                with archive.open(info) as entry, Image.open(io.BytesIO(entry.read())) as image:
                    sized += image.size[0] > 0
    return sized


def bench_dataset(endpoint: str, counts: list[int], repeats: int, moto_up_to: int = 100) -> list[dict[str, Any]]:
    """moto answers a range GET by reading the whole object, so past `moto_up_to` images only the local-file
    time is measured (the bytes and requests are the same either way)."""
    from loradrop.archive import ArchiveLimits, S3RangeReader, open_archive
    from loradrop.dataset import survey

    s3 = s3_client(endpoint)
    s3.create_bucket(Bucket="survey")
    limits = ArchiveLimits(max_archive_bytes=8 * GIB, max_entries=5000)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for count in counts:
            source = Path(scratch) / f"set-{count}.zip"
            write_dataset_zip(source, count)
            size = source.stat().st_size
            local = []
            for _ in range(repeats):
                started = time.perf_counter()
                report = survey(open_archive(FileRangeReader(source), limits), budget_seconds=600)
                local.append(time.perf_counter() - started)
            assert len(report.facts) == count, report.not_surveyed
            s3.upload_file(str(source), "survey", source.name)
            ours, requests, fetched = [], 0, 0
            for _ in range(repeats if count <= moto_up_to else 0):
                reader = S3RangeReader(s3, "survey", source.name, size)
                started = time.perf_counter()
                survey(open_archive(reader, limits), budget_seconds=600)
                ours.append(time.perf_counter() - started)
                requests, fetched = reader.requests, reader.bytes_read
            if not ours:  # the same reads, counted against the local file
                counting = _CountingReader(source)
                survey(open_archive(counting, limits), budget_seconds=600)
                requests, fetched = counting.requests, counting.bytes_read
            naive_local = []
            for _ in range(repeats):
                started = time.perf_counter()
                assert _naive(source) == count
                naive_local.append(time.perf_counter() - started)
            naive = []
            for _ in range(repeats if count <= moto_up_to else 1):
                started = time.perf_counter()
                target = Path(scratch) / "download.zip"
                with target.open("wb") as handle:
                    shutil.copyfileobj(s3.get_object(Bucket="survey", Key=source.name)["Body"], handle, 8 * MIB)
                assert _naive(target) == count
                target.unlink()
                naive.append(time.perf_counter() - started)
            s3.delete_object(Bucket="survey", Key=source.name)
            rows.append(
                {
                    "images": count,
                    "size": size,
                    "bytes_read": fetched,
                    "requests": requests,
                    "per_image_max": report.read_stats()["survey_bytes_per_image_max"],
                    "per_image_mean": report.read_stats()["survey_bytes_per_image_mean"],
                    "moto_s": median(ours) if ours else None,
                    "local_s": median(local),
                    "naive_s": median(naive),
                    "naive_local_s": median(naive_local),
                    "naive_bytes": size,
                }
            )
            print(f"  dataset survey {count} images: {rows[-1]}", flush=True)
            source.unlink()
    return rows


class _CountingReader(FileRangeReader):
    """Range reads of a local file, counted as S3RangeReader counts them (from the survey's threads too)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.requests = 0
        self.bytes_read = 0
        self._lock = threading.Lock()

    def read(self, start: int, length: int) -> bytes:
        data = super().read(start, length)
        with self._lock:
            self.requests += 1
            self.bytes_read += len(data)
        return data
