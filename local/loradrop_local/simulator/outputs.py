"""Trained-LoRA stand-ins: a valid .safetensors stream of any size, generated, never held in memory."""

from __future__ import annotations

import json
import random
import struct
from typing import Any

from loradrop_local.simulator.model import BLOCK


def safetensors_chunks(task_id: str, size: int, rank: int, header: bytes | None = None) -> tuple[int, Any]:
    """A deterministic `.safetensors` file of exactly `size` bytes, as (size, chunk iterator factory); with
    `header`, that JSON stands where the file's own would (a malformed one, say), padded to keep the size."""
    if header is not None:
        return _with_header(task_id, size, header)
    names = [
        f"lora_unet_double_blocks_{block}_img_attn_{part}.lora_{direction}.weight"
        for block in range(19)
        for part in ("qkv", "proj")
        for direction in ("down", "up")
    ]
    tensors: dict[str, Any] = {"__metadata__": {"format": "pt", "ss_network_dim": str(rank), "task": task_id}}
    shapes = [(name, [rank, 3072] if name.endswith("down.weight") else [3072, rank]) for name in names]
    budget = max(0, size - 8 - 4096)  # leave room for the header
    offset = 0
    for name, shape in shapes:
        length = shape[0] * shape[1] * 2
        if offset + length > budget:
            break
        tensors[name] = {"dtype": "F16", "shape": shape, "data_offsets": [offset, offset + length]}
        offset += length

    def header_for(padding_tensor: int) -> bytes:
        full = dict(tensors)
        full["lora_te_padding"] = {
            "dtype": "U8",
            "shape": [padding_tensor],
            "data_offsets": [offset, offset + padding_tensor],
        }
        raw = json.dumps(full, separators=(",", ":")).encode()
        return raw + b" " * (-len(raw) % 8)

    header = header_for(0)
    padding = size - 8 - len(header) - offset
    for _ in range(3):  # the header grows with the padding's digits; settle it
        header = header_for(max(0, padding))
        padding = size - 8 - len(header) - offset
    if padding < 0:
        raise ValueError(f"output size {size} is too small for a safetensors file")
    return _stream(task_id, header, offset + padding)


def _with_header(task_id: str, size: int, header: bytes) -> tuple[int, Any]:
    raw = header + b" " * (-len(header) % 8)
    return _stream(task_id, raw, max(0, size - 8 - len(raw)))


def _stream(task_id: str, header: bytes, data_size: int) -> tuple[int, Any]:
    """The file: its header's length, the header, then `data_size` bytes of the task's own noise."""
    prefix = struct.pack("<Q", len(header)) + header
    block = random.Random(task_id).randbytes(BLOCK)  # test data, not security

    def chunks() -> Any:
        yield prefix
        remaining = data_size
        while remaining > 0:
            piece = block if remaining >= BLOCK else block[:remaining]
            remaining -= len(piece)
            yield piece

    return len(prefix) + data_size, chunks
