"""The ZIP inspector: what it accepts, what it rejects and why, and how little it reads."""

from __future__ import annotations

import io
import zipfile

import pytest

from loradrop.archive import ArchiveLimits, ArchiveRejected, inspect_archive
from loradrop.ranges import TAIL_BYTES, RangeFile, ReadBudgetExceeded
from tests.unit.zips import MemoryReader, make_zip, sparse_zip64

LIMITS = ArchiveLimits()
PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)
GIB = 1024**3


def inspect(data: bytes, limits: ArchiveLimits = LIMITS):  # type: ignore[no-untyped-def]
    return inspect_archive(MemoryReader(data), limits)


def rejection(data: bytes, limits: ArchiveLimits = LIMITS) -> str:
    with pytest.raises(ArchiveRejected) as caught:
        inspect(data, limits)
    return str(caught.value)


def test_counts_images_and_matching_captions_and_names_mac_litter_as_junk() -> None:
    data = make_zip(
        {
            "set/a.jpg": b"1",
            "set/a.txt": b"a photo",
            "set/b.JPEG": b"2",
            "set/c.png": b"3",
            "set/d.webp": b"4",
            "set/orphan.txt": b"no image",
            "__MACOSX/set/._a.jpg": b"x",
            "set/.DS_Store": b"x",
            "set/notes.md": b"x",
            "set/": b"",
        }
    )
    report = inspect(data)
    assert (report.images, report.captions, report.ignored, report.entries) == (4, 1, 1, 10)
    assert report.junk == ("__MACOSX/set/._a.jpg", "set/.DS_Store")
    assert report.warnings == [
        "2 junk entries left by zip tools (__MACOSX/…, .DS_Store): ignored; `loradrop submit --fix` leaves them out"
    ]


def test_few_images_is_not_a_rejection_the_dataset_survey_judges_it() -> None:
    report = inspect(make_zip({"a.png": b"1", "b.png": b"2"}))
    assert report.images == 2
    assert report.warnings == []


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "the file is empty"),
        (b"this is not a zip at all" * 100, "not a ZIP archive"),
        (make_zip({"readme.txt": b"hello", "doc.pdf": b"%PDF"}), "no images found"),
        (make_zip({"__MACOSX/._a.jpg": b"x", "__MACOSX/._b.png": b"x"}), "no images found"),
        (make_zip({"../escape.png": b"x"}), "climbs out of the archive"),
        (make_zip({"ok/../../etc.png": b"x"}), "climbs out of the archive"),
        (make_zip({"/etc/passwd.png": b"x"}), "absolute path"),
        (make_zip({"C:\\photos\\a.png": b"x"}), "absolute path"),
        (make_zip({"a.png": b"x"}, flags={"a.png": 0x1}), "is encrypted"),
        (make_zip({"link.png": b"/etc/passwd"}, unix_modes={"link.png": 0o120777}), "symbolic link"),
    ],
    ids=[
        "empty",
        "not-a-zip",
        "no-images",
        "only-macosx",
        "dotdot",
        "nested-dotdot",
        "absolute",
        "drive",
        "encrypted",
        "symlink",
    ],
)
def test_rejections_say_what_is_wrong(data: bytes, expected: str) -> None:
    assert expected in rejection(data)


def test_entry_without_a_name_is_rejected() -> None:
    # Found by the property-based test: a corrupted name length left an empty name behind.
    data = make_zip({"a.png": b"x", "": b"y"})
    assert "entry without a name" in rejection(data)


def test_empty_zip_archive_is_rejected() -> None:
    assert "contains no files" in rejection(make_zip({}))


def test_truncated_archive_is_rejected() -> None:
    data = make_zip({f"img{i}.png": b"x" * 1000 for i in range(10)})
    cut = data[:200] + data[-22:]  # directory offset now points past the end
    assert "truncated or corrupt" in rejection(cut)


def test_too_many_entries() -> None:
    data = make_zip({f"img{i}.png": b"" for i in range(30)})
    assert "over the limit of 20" in rejection(data, ArchiveLimits(max_entries=20))


def test_zip_bomb_by_ratio() -> None:
    data = make_zip({"bomb.png": b"\0" * (4 * 1024 * 1024)}, compression=zipfile.ZIP_DEFLATED)
    assert "ZIP bomb" in rejection(data)


def test_total_uncompressed_size_limit() -> None:
    data = make_zip({"a.png": b"x" * 2000, "b.png": b"y" * 2000})
    assert "more than" in rejection(data, ArchiveLimits(max_uncompressed_bytes=3000))


def test_archive_size_limit_is_checked_before_reading() -> None:
    reader = sparse_zip64(5 * GIB, ["a.png"], 1024)
    with pytest.raises(ArchiveRejected, match="over the limit"):
        inspect_archive(reader, ArchiveLimits(max_archive_bytes=2 * GIB))
    assert reader.bytes_read == 0


def test_multi_gigabyte_zip64_archive_is_inspected_with_a_bounded_read() -> None:
    names = [f"photos/img_{i:03d}.png" for i in range(40)]
    reader = sparse_zip64(6 * GIB, names, 150 * 1024 * 1024)
    report = inspect_archive(reader, ArchiveLimits(max_archive_bytes=8 * GIB, max_uncompressed_bytes=8 * GIB))
    assert report.images == 40
    assert report.uncompressed_bytes == 40 * 150 * 1024 * 1024
    # One tail read (end records and, here, the directory): 64 KiB plus a little, never gigabytes.
    assert reader.bytes_read <= 66 * 1024
    assert reader.reads <= 2


def test_large_directory_is_read_separately_and_still_bounded() -> None:
    names = [f"photos/a-rather-long-folder-name/and-a-long-file-name-{i:04d}.png" for i in range(1500)]
    reader = sparse_zip64(3 * GIB, names, 1024 * 1024)
    report = inspect_archive(reader, ArchiveLimits(max_archive_bytes=4 * GIB))
    assert report.images == 1500
    directory_bytes = sum(46 + len(n) + 28 for n in names)
    assert reader.bytes_read <= 66 * 1024 + directory_bytes + 56
    assert reader.reads <= 3


def test_real_zip64_from_zipfile() -> None:
    import io

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        with archive.open("big.png", "w", force_zip64=True) as handle:
            handle.write(b"x" * 100)
        archive.writestr("cap.txt", "caption")
    report = inspect(buffer.getvalue())
    assert report.images == 1


def _with_method(data: bytes, method: int) -> bytes:
    """A stored ZIP relabelled with another compression method in its central directory (what the
    inspector reads), as a tool using that method would have written it."""
    start = data.rfind(b"PK\x01\x02")
    return data[: start + 10] + method.to_bytes(2, "little") + data[start + 12 :]


@pytest.mark.parametrize(
    ("method", "name"), [(9, "deflate64"), (12, "bzip2"), (14, "lzma"), (93, "zstd"), (95, "xz"), (42, "unknown")]
)
def test_compression_methods_the_trainer_may_not_unpack_are_rejected(method: int, name: str) -> None:
    data = _with_method(make_zip({"a.png": PNG, "b.png": PNG}), method)
    with pytest.raises(ArchiveRejected, match=rf"entry 'b.png' is compressed with method {method} \({name}\)"):
        inspect(data)


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_stored_and_deflate_are_accepted(compression: int) -> None:
    assert inspect(make_zip({"a.png": PNG}, compression=compression)).images == 1


def test_bytes_after_the_end_record_are_ignored_with_a_warning_as_zipfile_does() -> None:
    appended = b"\x00appended by an uploader" * 3  # 72 bytes
    data = make_zip({"a.png": PNG, "a.txt": b"caption"}) + appended
    assert len(zipfile.ZipFile(io.BytesIO(data)).namelist()) == 2  # the reference reader opens it
    report = inspect(data)
    assert (report.images, report.captions, report.trailing_bytes) == (1, 1, len(appended))
    assert "72 bytes after the end of the ZIP were ignored (as zip tools do)" in report.warnings


def test_a_comment_holding_an_end_signature_does_not_fool_the_reader() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.png", PNG)
        archive.comment = b"PK\x05\x06" + b"\x00" * 30
    report = inspect(buffer.getvalue())
    assert (report.images, report.trailing_bytes) == (1, 0)


def test_prepended_data_is_handled_by_zipfile_as_unzip_does() -> None:
    # A self-extracting stub (or any bytes) before the archive shifts every offset; zipfile corrects them.
    data = b"MZ" + bytes(5000) + make_zip({"a.png": PNG, "a.txt": b"caption", "b.png": PNG})
    assert zipfile.ZipFile(io.BytesIO(data)).namelist() == ["a.png", "a.txt", "b.png"]
    report = inspect(data)
    assert (report.images, report.captions) == (2, 1)


def test_a_name_marked_utf8_that_is_not_is_rejected_before_paying() -> None:
    data = make_zip({"a.png": PNG, "zz.png": PNG}, flags={"zz.png": 0x800})
    start = data.rfind(b"zz.png")  # the central directory's copy of the name
    broken = data[:start] + b"\xff\xfe" + data[start + 2 :]
    assert "truncated or corrupt" in rejection(broken)


def test_an_entry_that_claims_to_reach_into_the_directory_is_rejected() -> None:
    data = make_zip({"a.png": PNG, "b.png": PNG})
    start = data.rfind(b"PK\x01\x02")  # the last entry's compressed size, made larger than the archive
    lying = data[: start + 20] + (10**6).to_bytes(4, "little") + data[start + 24 :]
    assert "entry 'b.png' lies outside the archive" in rejection(lying)


def test_a_directory_size_beyond_the_limits_is_refused_before_it_is_read() -> None:
    names = [f"photos/{'long-name-' * 8}{i:04d}.png" for i in range(8000)]  # a directory of 1.3 MiB
    reader = sparse_zip64(3 * GIB, names, 64 * 1024)
    limits = ArchiveLimits(max_archive_bytes=4 * GIB, max_entries=40)  # a directory of 1 MiB at most
    with pytest.raises(ArchiveRejected, match="implausibly large for at most 40 entries"):
        inspect_archive(reader, limits)
    assert reader.bytes_read <= 22 + 0xFFFF + 20 + limits.max_central_directory_bytes + 56


class TestRangeFile:
    def test_the_tail_comes_first_in_one_read_and_stays_cached(self) -> None:
        reader = MemoryReader(bytes(range(256)) * 1024)  # 256 KiB
        file = RangeFile(reader)
        file.seek(-10, io.SEEK_END)
        assert file.read() == reader.data[-10:]
        file.seek(len(reader.data) - 5000)
        assert file.read(100) == reader.data[-5000:-4900]
        assert (reader.reads, reader.bytes_read) == (1, TAIL_BYTES)

    def test_reads_before_the_tail_fetch_at_least_read_ahead(self) -> None:
        reader = MemoryReader(bytes(range(256)) * 1024)
        file = RangeFile(reader)
        file.read_ahead = 4096
        file.seek(1000)
        assert file.read(10) == reader.data[1000:1010]
        assert file.read(4000) == reader.data[1010:5010]  # from the first fetch: 1000..5096
        assert reader.reads == 2  # with the tail
        assert file.read(200) == reader.data[5010:5210]  # 86 cached bytes, then 5096..9192
        assert reader.reads == 3

    def test_prefetch_merges_near_ranges_and_forget_keeps_the_tail(self) -> None:
        reader = MemoryReader(bytes(1024 * 1024))
        file = RangeFile(reader)
        file.tail()
        file.prefetch([(0, 100), (150, 300), (10_000, 10_100), (200, 250)], merge_gap=64)
        assert reader.reads == 3  # the tail, 0..300, 10000..10100
        file.seek(0)
        file.read(300)
        assert reader.reads == 3
        file.forget(0, 20_000)
        file.seek(0)
        file.read(10)
        file.tail()
        assert reader.reads == 4  # 0..10 again; the tail stayed

    def test_a_budget_caps_what_is_fetched(self) -> None:
        file = RangeFile(MemoryReader(bytes(1024 * 1024)), budget=TAIL_BYTES + 1000)
        file.tail()
        file.seek(0)
        file.read(1000)
        with pytest.raises(ReadBudgetExceeded):
            file.read(1)
