"""Small, real training datasets for the demo and tests: PNG images with captions, zipped."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path


def png(width: int, height: int, seed: int) -> bytes:
    """A valid RGB PNG with a simple gradient (no imaging library needed)."""
    rows = bytearray()
    for y in range(height):
        rows.append(0)  # filter: none
        for x in range(width):
            rows += bytes(((x * 7 + seed * 31) % 256, (y * 5 + seed * 17) % 256, ((x + y) * 3 + seed) % 256))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(rows))) + chunk(b"IEND", b"")
    )


def training_zip(images: int = 6, captions: bool = True, trigger_word: str = "p3r5on", size: int = 64) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for i in range(images):
            archive.writestr(f"photos/img_{i:02d}.png", png(size, size, i))
            if captions:
                archive.writestr(f"photos/img_{i:02d}.txt", f"a photo of {trigger_word}, variation {i}")
    return buffer.getvalue()


def zip_folder(folder: Path) -> bytes:
    """Zip a folder of images (and same-named .txt captions) in memory, skipping hidden files."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            relative = path.relative_to(folder)
            if path.is_file() and not any(part.startswith(".") for part in relative.parts):
                archive.write(path, relative.as_posix())
    return buffer.getvalue()
