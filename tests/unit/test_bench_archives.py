"""The benchmark's pieces: its archives are real ZIPs the inspector, the survey and zipfile accept, and its
report embeds a chart for each figure."""

from __future__ import annotations

import zipfile
from pathlib import Path

from loradrop.archive import ArchiveLimits, inspect_archive
from loradrop_dev.bench.inspection import ENTRIES, FileRangeReader, write_stored_zip


def test_stored_zip_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "a.zip"
    write_stored_zip(path, 8 * 1024 * 1024)
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
        assert len(archive.infolist()) == ENTRIES
    report = inspect_archive(FileRangeReader(path), ArchiveLimits())
    assert report.images == ENTRIES
    assert abs(path.stat().st_size - 8 * 1024 * 1024) < 16 * 1024


def test_the_report_embeds_a_chart_for_each_figure(tmp_path: Path) -> None:
    import json

    from loradrop_dev.bench.processes import RAW
    from loradrop_dev.bench.report import write_report
    from loradrop_dev.bench.transfer import TransferResult

    data = json.loads(RAW.read_text())  # the measurements committed beside docs/benchmarks.md
    data["transfer"] = [TransferResult(**row) for row in data["transfer"]]
    report = tmp_path / "benchmarks.md"
    write_report(data, data["seconds"], report)
    text = report.read_text()
    for chart in ("inspection-bytes", "transfer", "cold-start", "dataset-bytes"):
        svg = tmp_path / "charts" / f"{chart}.svg"
        assert f"](charts/{chart}.svg)" in text
        drawing = svg.read_text()
        assert drawing.startswith("<?xml")
        assert drawing.rstrip().endswith("</svg>")
    assert "## 5. Dataset survey vs image count" in text
    assert "| Silver | 500, 300 | 10 |" in text  # the tier table follows the template's mapping


def test_the_survey_benchmark_set_is_photos_some_behind_exif(tmp_path: Path) -> None:
    from loradrop.archive import open_archive
    from loradrop.dataset import survey
    from loradrop_dev.bench.dataset import EXIF_EVERY, write_dataset_zip

    path = tmp_path / "set.zip"
    write_dataset_zip(path, 20)
    report = survey(open_archive(FileRangeReader(path), ArchiveLimits()))
    assert report.as_dict()["usable"] == 20
    assert report.warnings() == []
    deep = [f for f in report.facts.values() if f.bytes_read > 4096 + 200]
    assert len(deep) == 20 // EXIF_EVERY  # the EXIF ones took the survey's second step
