"""Training sets the way real tools leave them, byte for byte: a phone's JPEG with an EXIF orientation, a ZIP
made by macOS Archive Utility (a `__MACOSX/` tree of AppleDouble `._name` files beside the real ones, a
Finder `.DS_Store`)."""

from __future__ import annotations

import io
import struct
import zipfile

from loradrop_local.dataset import photo

ORIENTATION = 0x0112
MAKE = 0x010F
SHORT, ASCII = 3, 2


def exif_app1(orientation: int, order: bytes = b"II") -> bytes:
    """An APP1 segment as a phone writes it: "Exif\\0\\0", a TIFF header in either byte order, IFD0 with the
    camera's make and the Orientation tag (a SHORT, its value left-justified in the entry's 4 bytes)."""
    e = "<" if order == b"II" else ">"
    make = b"Apple\x00"
    ifd0_entries = 2
    make_at = 8 + 2 + 12 * ifd0_entries + 4  # after the TIFF header, the entry count, the entries, next-IFD
    tiff = (
        order
        + struct.pack(e + "HI", 42, 8)
        + struct.pack(e + "H", ifd0_entries)
        + struct.pack(e + "HHII", MAKE, ASCII, len(make), make_at)
        + struct.pack(e + "HHIH", ORIENTATION, SHORT, 1, orientation)
        + b"\x00\x00"
        + struct.pack(e + "I", 0)
        + make
    )
    body = b"Exif\x00\x00" + tiff
    return b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body


def phone_jpeg(width: int, height: int, seed: int, orientation: int, order: bytes = b"II") -> bytes:
    """A photo shaped like an iPhone's JPEG: the EXIF APP1 right after the start of image, no JFIF segment."""
    return with_orientation(photo(width, height, seed), orientation, order)


def with_orientation(jpeg: bytes, orientation: int, order: bytes = b"II") -> bytes:
    """A JPEG's bytes with a phone's EXIF APP1 in place of its JFIF segment."""
    rest = jpeg[2:]
    if rest[:2] == b"\xff\xe0":  # Pillow's JFIF APP0: a phone writes none
        (length,) = struct.unpack(">H", rest[2:4])
        rest = rest[2 + length :]
    return b"\xff\xd8" + exif_app1(orientation, order) + rest


def apple_double() -> bytes:
    """An AppleDouble `._name` file: magic, version, filler, two entries (resource fork, Finder info)."""
    header = struct.pack(">II", 0x00051607, 0x00020000) + b"Mac OS X        " + struct.pack(">H", 2)
    entries = struct.pack(">III", 9, 50, 32) + struct.pack(">III", 2, 82, 0)
    return (header + entries).ljust(82, b"\x00")


def macos_zip(files: dict[str, bytes], folder: str = "set") -> bytes:
    """What Archive Utility's "Compress" makes of a folder: the folder entry, its files, the Finder's
    `.DS_Store`, and a `__MACOSX/` tree holding a `._name` AppleDouble file beside each real file."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{folder}/", b"")
        for name, data in files.items():
            archive.writestr(f"{folder}/{name}", data)
        archive.writestr(f"{folder}/.DS_Store", b"\x00\x00\x00\x01Bud1" + bytes(100))
        archive.writestr("__MACOSX/", b"")
        archive.writestr(f"__MACOSX/{folder}/", b"")
        for name in files:
            archive.writestr(f"__MACOSX/{folder}/._{name}", apple_double())
        archive.writestr(f"__MACOSX/{folder}/._.DS_Store", apple_double())
    return buffer.getvalue()
