"""A seekable, read-only file over range reads: only the bytes asked for are fetched, within a byte budget.

`archive` opens ZIPs over it, and the dataset survey reads each image's first bytes through it.
"""

from __future__ import annotations

import io
from bisect import bisect_right
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

# A ZIP's end record may be followed by a 64 KiB comment: the first read fetches this much of the tail.
TAIL_BYTES = 22 + 0xFFFF + 20


class RangeReader(Protocol):
    size: int

    def read(self, start: int, length: int) -> bytes: ...


class BytesReader:
    """A RangeReader over bytes in memory: `loradrop submit` checks the archive it is about to upload with the
    same code SubmitTraining runs over S3."""

    def __init__(self, data: bytes) -> None:
        self.size = len(data)
        self._data = data

    def read(self, start: int, length: int) -> bytes:
        return self._data[start : start + length]


class ReadBudgetExceeded(Exception):
    """A read would fetch more than the file's budget allows (a lying directory size, say)."""


class RangeFile(io.RawIOBase):
    """A read-only, seekable file over a RangeReader that fetches only what is read.

    The first read fetches the tail (`tail_bytes`, one request) and keeps it; other reads fetch what
    the cache lacks, at least `read_ahead` bytes at a time, and `prefetch` fetches many ranges at once.
    `end` limits the file a reader sees (the archive may carry bytes after its end record). Nothing is
    fetched past `budget` bytes in all."""

    def __init__(self, source: RangeReader, *, budget: int | None = None, tail_bytes: int = TAIL_BYTES) -> None:
        super().__init__()
        self.source = source
        self.end = source.size
        self.budget = budget
        self.read_ahead = 0
        self.fetched = 0  # bytes asked for (the budget counts these)
        self.bytes_read = 0  # bytes received
        self.requests = 0
        self.high_water = 0  # the furthest byte read so far (a caller may reset it)
        self._tail_start = max(0, source.size - tail_bytes)
        self._starts: list[int] = []  # cached segments, sorted and disjoint
        self._segments: list[bytes] = []
        self._position = 0

    # ----- what zipfile uses -----
    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.end}[whence]
        if base + offset < 0:
            raise OSError("seek before the start of the file")
        self._position = base + offset
        return self._position

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.bytes_at(self._position, min(self._position + len(view), self.end))
        view[: len(data)] = data
        self._position += len(data)
        self.high_water = max(self.high_water, self._position)
        return len(data)

    # ----- fetching and caching -----
    def tail(self) -> tuple[int, bytes]:
        """Where the tail starts, and its bytes (fetched once)."""
        return self._tail_start, self.bytes_at(self._tail_start, self.source.size)

    def bytes_at(self, start: int, stop: int) -> bytes:
        if not self._starts and stop > start:
            self._fetch_into_cache(self._tail_start, self.source.size)  # the tail first, in one request
        pieces = []
        position = start
        while position < stop:
            index = bisect_right(self._starts, position) - 1
            if index >= 0 and position < self._starts[index] + len(self._segments[index]):
                offset = position - self._starts[index]
                piece = self._segments[index][offset : offset + stop - position]
                pieces.append(piece)
                position += len(piece)
                continue
            following = self._starts[index + 1] if index + 1 < len(self._starts) else self.source.size
            if not self._fetch_into_cache(position, min(following, max(stop, position + self.read_ahead))):
                break  # past the end of the object
        return b"".join(pieces)

    def prefetch(self, ranges: Iterable[tuple[int, int]], *, merge_gap: int = 0, concurrency: int = 8) -> None:
        """Fetch what the cache lacks of these [start, stop) ranges, several requests at a time. Ranges
        closer than `merge_gap` are fetched as one (fewer requests for a few more bytes)."""
        merged: list[list[int]] = []
        for start, wanted_stop in sorted(ranges):
            stop = min(wanted_stop, self.source.size)
            if merged and start <= merged[-1][1] + merge_gap:
                merged[-1][1] = max(merged[-1][1], stop)
            elif start < stop:
                merged.append([start, stop])
        wanted = [gap for start, stop in merged for gap in self._gaps(start, stop)]
        self._charge(sum(stop - start for start, stop in wanted))
        if not wanted:
            return
        with ThreadPoolExecutor(max_workers=min(concurrency, len(wanted))) as pool:
            answers = list(pool.map(lambda gap: self.source.read(gap[0], gap[1] - gap[0]), wanted))
        for (start, _), data in zip(wanted, answers, strict=True):
            self._count(data)
            if data:
                self._insert(start, data)

    def forget(self, start: int, stop: int) -> None:
        """Drop the cached segments that lie inside [start, stop), never the tail: memory stays flat over
        many reads."""
        kept = [
            (s, data)
            for s, data in zip(self._starts, self._segments, strict=True)
            if s == self._tail_start or not (start <= s and s + len(data) <= stop)
        ]
        self._starts = [s for s, _ in kept]
        self._segments = [data for _, data in kept]

    def _gaps(self, start: int, stop: int) -> list[tuple[int, int]]:
        gaps = []
        position = start
        for seg_start, data in zip(self._starts, self._segments, strict=True):
            seg_stop = seg_start + len(data)
            if seg_stop <= position:
                continue
            if seg_start >= stop:
                break
            if seg_start > position:
                gaps.append((position, seg_start))
            position = max(position, seg_stop)
        if position < stop:
            gaps.append((position, stop))
        return gaps

    def _charge(self, length: int) -> None:
        if self.budget is not None and self.fetched + length > self.budget:
            raise ReadBudgetExceeded(f"reading {length:,} more bytes would pass the budget of {self.budget:,}")
        self.fetched += length

    def _fetch_into_cache(self, start: int, stop: int) -> bool:
        if stop <= start:
            return False
        self._charge(stop - start)
        data = self.source.read(start, stop - start)
        self._count(data)
        if data:
            self._insert(start, data)
        return bool(data)

    def _count(self, data: bytes) -> None:
        self.requests += 1
        self.bytes_read += len(data)

    def _insert(self, start: int, data: bytes) -> None:
        index = bisect_right(self._starts, start)
        self._starts.insert(index, start)
        self._segments.insert(index, data)
