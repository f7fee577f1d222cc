"""docs/reliability.md as `make reliability` writes it: the inference tasks of sample images beside the training
tasks, counted against the attempts the sample rows record."""

from __future__ import annotations

from pathlib import Path

from loradrop_dev.reliability.harness import Outcome
from loradrop_dev.reliability.report import write_report


def rows(text: str) -> dict[str, dict[str, str]]:
    """The scenario table (the report's first), each row by its scenario, each cell by its column's header."""
    first = text[text.index("\n| ") :].partition("\n\n")[0]
    table = [line for line in first.splitlines() if line.startswith("| ")]
    header = [cell.strip() for cell in table[0].strip("|").split("|")]
    cells = ([cell.strip() for cell in line.strip("|").split("|")] for line in table[1:])
    return {row[0]: dict(zip(header, row, strict=True)) for row in cells}


def test_the_report_counts_inference_tasks_against_sample_attempts(tmp_path: Path) -> None:
    # Given a scenario without samples and one whose samples cost one task more than their rows count
    plain = Outcome("burst", "uploads", 2, {"COMPLETED": 2}, posts=2, tasks=2, attempts=2)
    sampled = Outcome("sample faults", "faults", 2, {"COMPLETED": 2}, posts=2, tasks=2, attempts=2)
    sampled.sample_jobs, sampled.sample_tasks, sampled.sample_attempts = 2, 5, 4
    sampled.problems.append("WaveSpeed created 5 inference tasks but the samples count 4")
    # When the report is written
    report = tmp_path / "reliability.md"
    write_report([plain, sampled], [], [], "fast", 1.0, report)
    # Then each row shows its inference tasks against the sample attempts, a dash where nothing asked for samples
    table = rows(report.read_text())
    column = "inference tasks / sample attempts"
    assert (table["burst"][column], table["burst"]["result"]) == ("-", "pass")
    assert table["sample faults"][column] == "5 / 4"
    assert table["sample faults"]["result"].startswith("FAIL: WaveSpeed created 5 inference tasks")
