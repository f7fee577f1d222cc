"""Image headers read from first bytes, checked against files Pillow writes (an encoder we did not write)."""

from __future__ import annotations

import io
import struct

import pytest
from PIL import Image

from loradrop.images import exif_orientation, sniff
from tests.unit.datasets import exif_app1, phone_jpeg


def encoded(kind: str, size: tuple[int, int], **options: object) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 120, 40)).save(buffer, kind, **options)
    return buffer.getvalue()


def with_exif_block(jpeg: bytes, block: int) -> bytes:
    """A JPEG with an APP1 segment of `block` bytes right after its start: a phone's EXIF and thumbnail."""
    app1 = b"\xff\xe1" + struct.pack(">H", block + 2) + b"Exif\x00\x00" + bytes(block - 6)
    return jpeg[:2] + app1 + jpeg[2:]


@pytest.mark.parametrize(
    ("kind", "options", "expected"),
    [
        ("PNG", {}, "PNG"),
        ("JPEG", {}, "JPEG"),
        ("JPEG", {"progressive": True}, "JPEG"),
        ("WEBP", {}, "WebP"),
        ("WEBP", {"lossless": True}, "WebP"),
        ("GIF", {}, "GIF"),
        ("BMP", {}, "BMP"),
    ],
    ids=["png", "jpeg", "jpeg-progressive", "webp-lossy", "webp-lossless", "gif", "bmp"],
)
def test_format_and_size_of_real_files(kind: str, options: dict[str, object], expected: str) -> None:
    header = sniff(encoded(kind, (1024, 683), **options)[:4096])
    assert (header.format, header.width, header.height, header.complete) == (expected, 1024, 683, True)


def test_webp_with_an_alpha_channel_uses_the_extended_header() -> None:
    buffer = io.BytesIO()
    Image.new("RGBA", (640, 480), (1, 2, 3, 128)).save(buffer, "WEBP")
    data = buffer.getvalue()
    assert data[12:16] == b"VP8X"
    header = sniff(data[:64])
    assert (header.format, header.width, header.height) == ("WebP", 640, 480)


def test_a_jpeg_frame_header_behind_exif_needs_more_bytes_then_is_found() -> None:
    data = with_exif_block(encoded("JPEG", (3024, 4032)), 40_000)
    first = sniff(data[:4096])
    assert (first.format, first.width, first.complete) == ("JPEG", None, False)
    later = sniff(data[:65536])
    assert (later.width, later.height, later.complete) == (3024, 4032, True)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\x00\x00\x00\x18ftypheic" + bytes(20), "HEIC"),
        (b"\x00\x00\x00\x1cftypavif" + bytes(20), "AVIF"),
        (b"II*\x00" + bytes(20), "TIFF"),
        (b"%PDF-1.7 not an image at all", None),
        (b"", None),
    ],
    ids=["heic", "avif", "tiff", "pdf", "empty"],
)
def test_other_formats_are_named_and_non_images_are_none(data: bytes, expected: str | None) -> None:
    assert sniff(data, whole=True).format == expected


def test_a_cut_off_header_asks_for_more_unless_the_file_ended() -> None:
    png = encoded("PNG", (10, 10))
    assert sniff(png[:12]).complete is False
    ended = sniff(png[:12], whole=True)
    assert (ended.format, ended.width, ended.complete) == ("PNG", None, True)


def test_a_damaged_jpeg_ends_the_walk_without_a_size() -> None:
    header = sniff(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(5) + b"garbage where a marker must be")
    assert (header.format, header.width, header.complete) == ("JPEG", None, True)


@pytest.mark.parametrize("order", [b"II", b"MM"], ids=["little-endian", "big-endian"])
def test_a_phones_exif_orientation_is_read_from_the_app1_block_in_either_byte_order(order: bytes) -> None:
    data = phone_jpeg(800, 600, 1, orientation=6, order=order)
    assert Image.open(io.BytesIO(data)).getexif()[0x0112] == 6  # Pillow reads the same bytes the same way
    header = sniff(data[:4096])
    assert (header.format, header.width, header.height, header.orientation) == ("JPEG", 800, 600, 6)


def test_a_jpeg_without_exif_or_with_an_upright_one_has_no_turn_to_report() -> None:
    assert sniff(encoded("JPEG", (64, 64))[:4096]).orientation is None
    assert sniff(phone_jpeg(64, 64, 1, orientation=1)[:4096]).orientation == 1


def test_an_app1_that_is_not_exif_or_is_cut_short_gives_no_orientation() -> None:
    xmp = b"http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta/>"
    jpeg = encoded("JPEG", (64, 64))
    data = jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(xmp) + 2) + xmp + jpeg[2:]
    assert sniff(data).orientation is None
    cut = exif_app1(6)[:20]  # the TIFF header but not its directory
    assert exif_orientation(cut[10:]) is None
