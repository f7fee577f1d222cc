"""The streamed reader behind the weights upload: every byte once, hashed, truncation detected."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from loradrop.weights import DownloadFailed, OutputTooLarge, _HashingReader, weights_filename

DATA = bytes(range(256)) * 40_000
CHUNKS = [DATA[i : i + 1_000_003] for i in range(0, len(DATA), 1_000_003)]


@pytest.mark.parametrize("part", [7_777, 999_999, 1_000_003, 3_000_001, len(DATA) + 1])
def test_parts_reassemble_the_stream_and_its_hash(part: int) -> None:
    reader = _HashingReader(iter(CHUNKS), len(DATA))
    parts = []
    while piece := reader.read(part):
        assert len(piece) <= part
        parts.append(piece)
    assert b"".join(parts) == DATA
    assert reader.size == len(DATA)
    assert reader.sha256.hexdigest() == hashlib.sha256(DATA).hexdigest()


def test_read_all() -> None:
    assert _HashingReader(iter(CHUNKS), None).read() == DATA


def test_short_stream_is_a_failed_download() -> None:
    reader = _HashingReader(iter(CHUNKS[:3]), len(DATA))
    with pytest.raises(DownloadFailed, match="truncated: got 3000009 of 10240000 bytes"):
        reader.read(5_000_000)


def test_connection_error_is_a_failed_download() -> None:
    def broken():  # type: ignore[no-untyped-def]
        yield CHUNKS[0]
        raise httpx.ReadError("connection reset")

    reader = _HashingReader(broken(), len(DATA))
    with pytest.raises(DownloadFailed, match="broke off after 1000003 bytes"):
        reader.read(5_000_000)


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("https://cdn/x/lora-ab12.safetensors?sig=1", "lora-ab12.safetensors"),
        ("https://cdn/x/my%20lora%20(v2).safetensors", "my_lora_v2_.safetensors"),
        ("https://cdn/x/../../etc/passwd", "passwd"),
        ("https://cdn/", "weights.safetensors"),
    ],
)
def test_object_name_from_url(url: str, name: str) -> None:
    assert weights_filename(url) == name


def test_a_stream_growing_past_the_cap_is_stopped() -> None:
    reader = _HashingReader(iter(CHUNKS), None, max_bytes=2_500_000)  # no Content-Length to check first
    with pytest.raises(OutputTooLarge, match=r"grew past 2\.4 MiB"):
        reader.read(5_000_000)
    assert reader.size <= 2_500_000 + 1_000_003  # stopped at the first chunk past the cap
