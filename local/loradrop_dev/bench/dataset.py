"""5. The dataset survey vs image count, captions included, beside the naive way: download the ZIP and open every
image (and caption)."""

from __future__ import annotations

import io
import random
import tempfile
import threading
import zipfile
from pathlib import Path
from typing import Any

from loradrop_dev.bench.inspection import FileRangeReader
from loradrop_dev.bench.processes import GIB, download, median, s3_client, timed
from loradrop_local.dataset import photo

COUNTS = [10, 100, 1000]
TRIGGER_WORD = "zxq"
# Phone-like photos: 768x576 JPEGs (no smaller than trainers want) of a photo's entropy, one in ten with
# a 48 KiB EXIF block before its frame header (the survey's second step), captions for all (the survey
# reads each one's first KiB for the trigger word).
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
    s3 = s3_client(endpoint)
    s3.create_bucket(Bucket="survey")
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for count in counts:
            rows.append(_survey_row(s3, Path(scratch), count, repeats, on_moto=count <= moto_up_to))
            print(f"  dataset survey {count} images: {rows[-1]}", flush=True)
    return rows


def _survey_row(s3: Any, scratch: Path, count: int, repeats: int, *, on_moto: bool) -> dict[str, Any]:
    from loradrop.archive import ArchiveLimits, S3RangeReader

    limits = ArchiveLimits(max_archive_bytes=8 * GIB, max_entries=5000)
    source = scratch / f"set-{count}.zip"
    write_dataset_zip(source, count)
    size = source.stat().st_size
    local, reports = timed(repeats, lambda: _survey(FileRangeReader(source), limits))
    report = reports[-1]
    assert len(report.facts) == len(report.caption_facts) == count, report.not_surveyed
    s3.upload_file(str(source), "survey", source.name)
    readers = [S3RangeReader(s3, "survey", source.name, size) for _ in range(repeats if on_moto else 0)]
    unused = iter(readers)
    ours, _ = timed(len(readers), lambda: _survey(next(unused), limits))
    counted: Any = readers[-1] if readers else _CountingReader(source)
    if not readers:  # off moto, the same reads counted against the local file
        _survey(counted, limits)
    images_only = _CountingReader(source)  # the same survey with its caption reads left out, for their cost
    _survey(images_only, limits, captions=False)
    naive_local, found = timed(repeats, lambda: _naive(source))
    assert found == [count] * repeats
    target = scratch / "download.zip"
    naive_runs = repeats if on_moto else 1
    naive, found = timed(naive_runs, lambda: _naive(download(s3, "survey", source.name, target)))
    assert found == [count] * naive_runs
    target.unlink()
    s3.delete_object(Bucket="survey", Key=source.name)
    source.unlink()
    return {
        "images": count,
        "size": size,
        "bytes_read": counted.bytes_read,
        "requests": counted.requests,
        "per_image_max": report.read_stats()["survey_bytes_per_image_max"],
        "per_image_mean": report.read_stats()["survey_bytes_per_image_mean"],
        "caption_bytes": report.read_stats()["caption_bytes_read"],
        "caption_bytes_max": report.read_stats()["caption_bytes_per_caption_max"],
        "images_only_bytes": images_only.bytes_read,
        "images_only_requests": images_only.requests,
        "moto_s": median(ours) if ours else None,
        "local_s": median(local),
        "naive_s": median(naive),
        "naive_local_s": median(naive_local),
        "naive_bytes": size,
    }


def _survey(reader: Any, limits: Any, *, captions: bool = True) -> Any:
    from loradrop.archive import open_archive
    from loradrop.dataset import survey

    archive = open_archive(reader, limits)
    if not captions:
        archive.captions = []
    return survey(archive, trigger_word=TRIGGER_WORD, budget_seconds=600)


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
