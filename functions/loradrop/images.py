"""What an image file is, and how large, from its first bytes: PNG's IHDR, JPEG's SOF, WebP's VP8/VP8L/VP8X
headers; other formats are named so a user learns what the trainer was given (an iPhone's HEIC renamed
.jpg, say). For a JPEG also its EXIF orientation, from the APP1 block that lies before the frame header
(so within the bytes already read). PNG's optional eXIf chunk and WebP's EXIF chunk are not read: cameras
and phones write orientation into JPEGs, and WebP keeps its EXIF after the image data."""

from __future__ import annotations

import struct
from dataclasses import dataclass

# What the trainer reads, by extension (the extensions loradrop counts as images).
EXPECTED_FORMAT = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WebP"}
TRAINABLE_FORMATS = frozenset(EXPECTED_FORMAT.values())

_JPEG_FRAMES = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}


@dataclass(frozen=True)
class ImageHeader:
    """`format` is None when the bytes are no image at all; `width`/`height` None when not (yet) known.
    `complete` is False when more bytes could tell more (a JPEG whose frame header comes later)."""

    format: str | None
    width: int | None = None
    height: int | None = None
    complete: bool = True
    orientation: int | None = None  # EXIF orientation (1 = as stored; 2-8 = mirrored and/or turned)


def sniff(data: bytes, *, whole: bool = False) -> ImageHeader:  # noqa: PLR0911 - one return per format
    """Read an image's format and size from its first bytes; `whole` says these are all of its bytes."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return _png(data, whole)
    if data.startswith(b"\xff\xd8\xff"):
        return _jpeg(data, whole)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp(data, whole)
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return _sized("GIF", data, "<HH", 6, whole)
    if data[:2] == b"BM" and len(data) >= 26:
        width, height = struct.unpack("<ii", data[18:26])
        return ImageHeader("BMP", abs(width), abs(height))
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return ImageHeader("TIFF")
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in (b"avif", b"avis"):
            return ImageHeader("AVIF")
        if brand in _HEIF_BRANDS:
            return ImageHeader("HEIC")
    if len(data) < 12 and not whole:
        return ImageHeader(None, complete=False)
    return ImageHeader(None)


def _sized(kind: str, data: bytes, layout: str, at: int, whole: bool) -> ImageHeader:
    end = at + struct.calcsize(layout)
    if len(data) < end:
        return ImageHeader(kind, complete=whole)
    width, height = struct.unpack(layout, data[at:end])
    return ImageHeader(kind, width, height)


def _png(data: bytes, whole: bool) -> ImageHeader:
    if len(data) >= 16 and data[12:16] != b"IHDR":
        return ImageHeader("PNG")  # a PNG without its header chunk first: no size to read
    return _sized("PNG", data, ">II", 16, whole)


def _webp(data: bytes, whole: bool) -> ImageHeader:  # noqa: PLR0911 - three chunk kinds, each short or whole
    chunk = data[12:16]
    if chunk == b"VP8 ":
        # A lossy frame: a 3-byte tag, the start code 9d 01 2a, then 14-bit width and height.
        if len(data) < 30:
            return ImageHeader("WebP", complete=whole)
        if data[23:26] != b"\x9d\x01\x2a":
            return ImageHeader("WebP")
        width, height = struct.unpack("<HH", data[26:30])
        return ImageHeader("WebP", width & 0x3FFF, height & 0x3FFF)
    if chunk == b"VP8L":
        if len(data) < 25:
            return ImageHeader("WebP", complete=whole)
        (bits,) = struct.unpack("<I", data[21:25])
        return ImageHeader("WebP", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8X":
        if len(data) < 30:
            return ImageHeader("WebP", complete=whole)
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return ImageHeader("WebP", width, height)
    return ImageHeader("WebP", complete=whole or len(data) >= 16)


def _jpeg(data: bytes, whole: bool) -> ImageHeader:
    """Walk the markers to the frame header, noting the EXIF orientation on the way; stop at the scan (no
    frame header before it: no size)."""
    position = 2
    orientation = None
    while True:
        if position + 4 > len(data):
            return ImageHeader("JPEG", complete=whole, orientation=orientation)
        if data[position] != 0xFF:
            return ImageHeader("JPEG", orientation=orientation)  # not a marker where one must be: a damaged file
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:  # markers without a length
            position += 2
            continue
        if marker in (0xD9, 0xDA):
            return ImageHeader("JPEG", orientation=orientation)
        (length,) = struct.unpack(">H", data[position + 2 : position + 4])
        if marker in _JPEG_FRAMES:
            if position + 9 > len(data):
                return ImageHeader("JPEG", complete=whole, orientation=orientation)
            height, width = struct.unpack(">HH", data[position + 5 : position + 9])
            return ImageHeader("JPEG", width, height, orientation=orientation)
        if length < 2:
            return ImageHeader("JPEG", orientation=orientation)
        segment = data[position + 4 : position + 2 + length]
        if marker == 0xE1 and orientation is None and segment.startswith(b"Exif\x00\x00"):
            orientation = exif_orientation(segment[6:])
        position += 2 + length


_ORIENTATION_TAG = 0x0112
_SHORT = 3


def exif_orientation(tiff: bytes) -> int | None:
    """The Orientation tag (0x0112) of IFD0 in an EXIF block's TIFF structure, either byte order; None when
    the block is cut short, malformed or has no such tag."""
    order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if order is None or len(tiff) < 8 or struct.unpack(order + "H", tiff[2:4])[0] != 42:
        return None
    (ifd,) = struct.unpack(order + "I", tiff[4:8])
    if ifd + 2 > len(tiff):
        return None
    (count,) = struct.unpack(order + "H", tiff[ifd : ifd + 2])
    for entry in range(ifd + 2, min(ifd + 2 + 12 * count, len(tiff) - 11), 12):
        tag, kind, number = struct.unpack(order + "HHI", tiff[entry : entry + 8])
        if tag == _ORIENTATION_TAG and kind == _SHORT and number == 1:
            (value,) = struct.unpack(order + "H", tiff[entry + 8 : entry + 10])
            return value if 1 <= value <= 8 else None
    return None
