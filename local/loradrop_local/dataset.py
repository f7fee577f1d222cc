"""Small, real training datasets for the demo, tests and benchmarks: images with captions, zipped."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib


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


def photo(width: int, height: int, seed: int, kind: str = "JPEG") -> bytes:
    """A photo-like image encoded by Pillow (JPEG, PNG or WEBP): a gradient and a shape, different per seed."""
    import random

    from PIL import Image, ImageDraw

    pick = random.Random(seed)
    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(3):
        left, top = pick.randrange(width // 2 + 1), pick.randrange(height // 2 + 1)
        box = (left, top, left + width // 3, top + height // 3)
        draw.ellipse(box, fill=(pick.randrange(256), pick.randrange(256), pick.randrange(256)))
    # Sensor-like noise gives the file a photo's size (a smooth gradient compresses to almost nothing).
    noise = Image.frombytes("L", (width, height), pick.randbytes(width * height)).convert("RGB")
    image = Image.blend(image, noise, 0.15)
    buffer = io.BytesIO()
    image.save(buffer, kind, **({"quality": 85} if kind == "JPEG" else {}))
    return buffer.getvalue()


def training_zip(
    images: int = 6, captions: bool = True, trigger_word: str = "p3r5on", size: int = 64, kind: str = "PNG"
) -> bytes:
    """A ZIP of `images` distinct images (PNG without Pillow, or JPEG/WEBP encoded by Pillow) and captions."""
    extension = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}[kind]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for i in range(images):
            data = png(size, size, i) if kind == "PNG" else photo(size, size, i, kind)
            archive.writestr(f"photos/img_{i:02d}.{extension}", data)
            if captions:
                archive.writestr(f"photos/img_{i:02d}.txt", f"a photo of {trigger_word}, variation {i}")
    return buffer.getvalue()
