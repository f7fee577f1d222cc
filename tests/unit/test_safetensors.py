"""The safetensors header read off a stream, whatever the chunking, and what it says about the file."""

from __future__ import annotations

import json
import struct

import pytest

from loradrop.safetensors import HeaderReader


def safetensors_file(tensors: dict[str, tuple[str, list[int]]], metadata: dict[str, str] | None = None) -> bytes:
    """A real safetensors file (the format's own layout), tensor data as zeros."""
    sizes = {"F16": 2, "BF16": 2, "F32": 4, "U8": 1}
    header: dict[str, object] = {"__metadata__": metadata} if metadata else {}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        length = sizes[dtype] * (shape[0] * shape[1] if len(shape) == 2 else shape[0])
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + length]}
        offset += length
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + bytes(offset)


LORA = {
    "lora_unet_a.lora_down.weight": ("BF16", [16, 3072]),
    "lora_unet_a.lora_up.weight": ("BF16", [3072, 16]),
    "lora_unet_a.alpha": ("F32", [1]),
}


def read(data: bytes, chunk: int) -> dict[str, object]:
    reader = HeaderReader()
    for start in range(0, len(data), chunk):
        reader.feed(data[start : start + chunk])
    return reader.finish(len(data))


@pytest.mark.parametrize("chunk", [1, 5, 8, 9, 100, 1 << 20])
def test_tensor_count_dtypes_and_parameters_whatever_the_chunks(chunk: int) -> None:
    data = safetensors_file(LORA, {"format": "pt", "ss_network_dim": "16"})
    summary = read(data, chunk)
    assert summary["valid"] is True
    assert (summary["tensors"], summary["dtypes"], summary["parameters"]) == (3, {"BF16": 2, "F32": 1}, 98305)
    assert summary["metadata"] == {"format": "pt", "ss_network_dim": "16"}
    assert summary["matches_size"] is True


def test_a_file_shorter_than_its_header_says_is_caught() -> None:
    data = safetensors_file(LORA)
    summary = read(data[:-100], 4096)
    assert summary["matches_size"] is False
    assert summary["expected_bytes"] == len(data)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"PK\x03\x04" + bytes(100), "a header length of"),
        (struct.pack("<Q", 12) + b"not json!!!!" + bytes(10), "its header is not JSON"),
        (struct.pack("<Q", 4) + b"[1] " + bytes(10), "not a JSON object"),
        (struct.pack("<Q", 16) + b'{"t": {"a": 1}} ' + bytes(10), "tensor 't' is malformed"),
        (b"\x01\x02", "only 2 bytes"),
    ],
    ids=["a-zip", "not-json", "not-an-object", "malformed-tensor", "too-short"],
)
def test_what_is_not_a_safetensors_file_says_why(data: bytes, problem: str) -> None:
    summary = read(data, 7)
    assert summary["valid"] is False
    assert problem in str(summary["problem"])


def header_of(tensor: object) -> bytes:
    raw = json.dumps({"t": tensor}).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + bytes(64)


@pytest.mark.parametrize(
    "tensor",
    [
        {"dtype": "F16", "shape": [2, 2], "data_offsets": [[0], [8]]},
        {"dtype": "F16", "shape": [2, 2], "data_offsets": [0, 1e400]},
        {"dtype": "F16", "shape": [2, 2], "data_offsets": [0, "8"]},
        {"dtype": "F16", "shape": [2, 2], "data_offsets": [8, 0]},
        {"dtype": "F16", "shape": [2, 2], "data_offsets": [0, 8, 16]},
        {"dtype": "F16", "shape": [2, -2], "data_offsets": [0, 8]},
        {"dtype": "F16", "shape": [1e400], "data_offsets": [0, 8]},
        {"dtype": "F16", "shape": {"a": 1}, "data_offsets": [0, 8]},
        {"dtype": "F16", "shape": [True], "data_offsets": [0, 8]},
        {"dtype": ["F16"], "shape": [2], "data_offsets": [0, 4]},
        {"dtype": "F16", "shape": 4, "data_offsets": {"start": 0}},
        "F16",
        None,
    ],
)
def test_a_header_that_is_json_but_malformed_in_any_field_is_a_problem_never_an_exception(tensor: object) -> None:
    summary = read(header_of(tensor), 5)
    assert summary == {"valid": False, "problem": "not a safetensors file (tensor 't' is malformed)"}


def test_a_header_nested_too_deep_to_parse_is_a_problem_never_an_exception() -> None:
    raw = b"[" * 200_000
    summary = read(struct.pack("<Q", len(raw)) + raw, 1 << 16)
    assert summary == {"valid": False, "problem": "not a safetensors file (its header is not JSON)"}


def test_the_header_is_known_from_the_first_bytes_and_the_data_passes_by() -> None:
    reader = HeaderReader()
    data = safetensors_file({"big": ("U8", [4 * 1024 * 1024])})
    reader.feed(data[:1024])
    assert reader.done
    reader.feed(data[1024:])  # the tensor data passes by untouched
    assert reader.finish(len(data))["tensors"] == 1
