"""The benchmark's sparse archives are real ZIPs that both the inspector and zipfile accept."""

from __future__ import annotations

import zipfile
from pathlib import Path

from loradrop.archive import ArchiveLimits, inspect_archive
from loradrop_local.bench.inspection import ENTRIES, FileRangeReader, write_stored_zip


def test_stored_zip_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "a.zip"
    write_stored_zip(path, 8 * 1024 * 1024)
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
        assert len(archive.infolist()) == ENTRIES
    report = inspect_archive(FileRangeReader(path), ArchiveLimits())
    assert report.images == ENTRIES
    assert abs(path.stat().st_size - 8 * 1024 * 1024) < 16 * 1024
