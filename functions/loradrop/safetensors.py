"""The header of a `.safetensors` file, read from the first bytes of the stream StoreWeights copies anyway.

A safetensors file starts with an 8-byte little-endian length, then that many bytes of JSON naming every
tensor (dtype, shape, byte range) and an optional `__metadata__` map of strings; the tensor data follows.
The header says how many tensors the LoRA has, of which dtypes, and how long the file must be — so a copy
can tell a real LoRA from a file that merely ends in `.safetensors`.
"""

from __future__ import annotations

import json
import math
import struct
from collections import Counter
from typing import Any

MAX_HEADER_BYTES = 16 * 1024 * 1024  # the format's readers refuse headers over 100 MB; a LoRA's is ~100 KB
_METADATA_ITEMS = 20
_METADATA_TEXT = 200


class HeaderReader:
    """Fed the stream chunk by chunk; keeps only the header's bytes, then parses them once."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._needed: int | None = None
        self.summary: dict[str, Any] | None = None
        self.problem: str | None = None
        self._data_end = 0

    @property
    def done(self) -> bool:
        return self.summary is not None or self.problem is not None

    def feed(self, chunk: bytes | memoryview) -> None:
        if self.done:
            return
        wanted = (self._needed or 8) - len(self._buffer)
        self._buffer += chunk[:wanted]
        if self._needed is None and len(self._buffer) >= 8:
            (length,) = struct.unpack("<Q", self._buffer[:8])
            if not 2 <= length <= MAX_HEADER_BYTES:
                self.problem = f"not a safetensors file (a header length of {length:,} bytes)"
                return
            self._needed = 8 + length
            self._buffer += chunk[wanted : wanted + self._needed - len(self._buffer)]
        if self._needed is not None and len(self._buffer) >= self._needed:
            self._parse(bytes(self._buffer[8 : self._needed]))
            self._buffer = bytearray()

    def finish(self, size: int) -> dict[str, Any]:
        """What the card says of the file once all `size` bytes have passed."""
        if self.summary is not None:
            expected = self._needed_total()
            return self.summary | {"matches_size": expected == size, "expected_bytes": expected}
        return {"valid": False, "problem": self.problem or f"not a safetensors file (only {size:,} bytes)"}

    def _needed_total(self) -> int:
        return (self._needed or 0) + self._data_end

    def _parse(self, raw: bytes) -> None:
        try:
            header = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: nesting too deep to parse
            self.problem = "not a safetensors file (its header is not JSON)"
            return
        if not isinstance(header, dict):
            self.problem = "not a safetensors file (its header is not a JSON object)"
            return
        metadata = header.pop("__metadata__", None)
        dtypes: Counter[str] = Counter()
        parameters = 0
        for name, tensor in header.items():
            parsed = _tensor(tensor)
            if parsed is None:
                self.problem = f"not a safetensors file (tensor {str(name)[:60]!r} is malformed)"
                return
            dtype, count, end = parsed
            dtypes[dtype] += 1
            parameters += count
            self._data_end = max(self._data_end, end)
        self.summary = {
            "valid": True,
            "tensors": len(header),
            "dtypes": dict(dtypes.most_common()),
            "parameters": parameters,
            "header_bytes": len(raw),
        }
        if isinstance(metadata, dict):
            self.summary["metadata"] = {
                str(key)[:_METADATA_TEXT]: str(value)[:_METADATA_TEXT]
                for key, value in list(metadata.items())[:_METADATA_ITEMS]
            }


def _tensor(entry: Any) -> tuple[str, int, int] | None:
    """A tensor entry's dtype, element count and end offset; None if any field is not what the format says
    (the header is the user's paid output's, read only to describe it: nothing in it may raise)."""
    if not isinstance(entry, dict):
        return None
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if not isinstance(dtype, str) or not isinstance(shape, list) or not isinstance(offsets, list):
        return None
    whole = [value for value in [*shape, *offsets] if isinstance(value, int) and not isinstance(value, bool)]
    if len(offsets) != 2 or len(whole) != len(shape) + 2 or min(whole, default=0) < 0:
        return None
    start, end = offsets
    return (dtype, math.prod(shape), end) if start <= end else None
