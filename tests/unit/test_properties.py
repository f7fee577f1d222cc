"""Property-based tests: the ZIP inspector and parameter validation on arbitrary input."""

from __future__ import annotations

import zipfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loradrop.archive import ArchiveLimits, ArchiveRejected, inspect_archive
from loradrop.models import PARAMETER_METADATA, InvalidParameters, TrainingParams
from tests.unit.zips import MemoryReader, make_zip

LIMITS = ArchiveLimits(max_entries=200)
MAX_READ = 22 + 0xFFFF + 20 + LIMITS.max_central_directory_bytes + 56
names = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=30)


def _inspect_never_crashes(data: bytes) -> None:
    reader = MemoryReader(data)
    try:
        report = inspect_archive(reader, LIMITS)
    except ArchiveRejected as err:
        reason = str(err)
        assert reason  # always a reason
    else:
        assert report.images >= 1
        assert report.captions <= report.images
    assert reader.bytes_read <= MAX_READ


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4096))
def test_random_bytes(data: bytes) -> None:
    _inspect_never_crashes(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(names, st.binary(max_size=64), min_size=1, max_size=8),
    st.lists(st.tuples(st.integers(min_value=0), st.integers(min_value=0, max_value=255)), max_size=6),
    st.integers(min_value=0, max_value=64),
)
def test_mutated_archives(files: dict[str, bytes], flips: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(make_zip(files, compression=zipfile.ZIP_DEFLATED))
    for position, value in flips:
        data[position % len(data)] = value
    _inspect_never_crashes(bytes(data[: len(data) - cut]))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from([m for m, _ in PARAMETER_METADATA.values()] + ["other"]), st.text(max_size=12)))
def test_parameters_are_valid_or_explained(metadata: dict[str, str]) -> None:
    try:
        params, _ = TrainingParams.from_metadata(metadata, TrainingParams())
    except InvalidParameters as err:
        problems = err.problems
        assert problems
        for problem in problems:
            assert any(problem.startswith(f"{key}=") for key, _ in PARAMETER_METADATA.values())
    else:
        assert 1000 <= params.steps <= 10000
        assert 1 <= params.lora_rank <= 64
        assert 0 < params.learning_rate <= 1
        assert 1 <= len(params.trigger_word) <= 64
