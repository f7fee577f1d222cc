"""Build ZIP archives, real or synthetic, for the inspector's tests."""

from __future__ import annotations

import io
import struct
import zipfile


class MemoryReader:
    """A RangeReader over bytes that counts what is read."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)
        self.bytes_read = 0
        self.reads = 0

    def read(self, start: int, length: int) -> bytes:
        self.reads += 1
        self.bytes_read += length
        return self.data[start : start + length]


class SparseReader:
    """A huge archive that exists only as its directory at the end: everything before is zeros."""

    def __init__(self, tail: bytes, size: int) -> None:
        self.size = size
        self._tail = tail
        self._tail_start = size - len(tail)
        self.bytes_read = 0
        self.reads = 0

    def read(self, start: int, length: int) -> bytes:
        self.reads += 1
        self.bytes_read += length
        out = bytearray(length)
        overlap_start = max(start, self._tail_start)
        overlap_end = min(start + length, self.size)
        if overlap_start < overlap_end:
            piece = self._tail[overlap_start - self._tail_start : overlap_end - self._tail_start]
            out[overlap_start - start : overlap_start - start + len(piece)] = piece
        return bytes(out)


def make_zip(
    files: dict[str, bytes],
    *,
    compression: int = zipfile.ZIP_STORED,
    flags: dict[str, int] | None = None,
    unix_modes: dict[str, int] | None = None,
) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in files.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = compression
            if unix_modes and name in unix_modes:
                info.create_system = 3
                info.external_attr = unix_modes[name] << 16
            archive.writestr(info, data)
            if flags and name in flags:
                info.flag_bits |= flags[name]
    return buffer.getvalue()


def central_entry(name: str, csize: int, usize: int, offset: int, *, zip64: bool = False) -> bytes:
    raw = name.encode()
    extra = b""
    if zip64:
        extra = struct.pack("<HHQQQ", 0x0001, 24, usize, csize, offset)
        csize = usize = offset = 0xFFFFFFFF
    header = struct.pack(
        "<4sHHHHHHLLLHHHHHLL",
        b"PK\x01\x02",
        45,
        45,
        0x800,
        0,
        0,
        0,
        0,
        csize,
        usize,
        len(raw),
        len(extra),
        0,
        0,
        0,
        0,
        offset,
    )
    return header + raw + extra


def sparse_zip64(total_size: int, names: list[str], entry_size: int) -> SparseReader:
    """A ZIP64 archive of `total_size` bytes whose stored entries are each `entry_size` bytes."""
    directory = b"".join(
        central_entry(name, entry_size, entry_size, i * entry_size, zip64=True) for i, name in enumerate(names)
    )
    cd_offset = total_size - len(directory) - 56 - 20 - 22
    zip64_eocd = struct.pack(
        "<4sQHHLLQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, len(names), len(names), len(directory), cd_offset
    )
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, cd_offset + len(directory), 1)
    eocd = struct.pack("<4sHHHHLLH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    tail = directory + zip64_eocd + locator + eocd
    assert len(tail) + cd_offset == total_size
    return SparseReader(tail, total_size)
