"""Sample-image stand-ins for `flux-dev-lora`: small deterministic pictures with their prompt and seed drawn in.

A real image has the requested `size` (1024*1024 by default); these are IMAGE_SIDE pixels square, to stay
fast to make and to serve. What a real image depends on — prompt, seed, the LoRAs and their scales, its
place in the batch — picks the colours and the text, so the same request gives the same bytes every time.
`output_format` is honoured (PNG, JPEG or WebP bytes, served with that content type); the docs give it no
default, and PNG is the simulator's.
"""

from __future__ import annotations

import hashlib
import io
import json
import textwrap
from functools import cache, lru_cache
from typing import Any

from PIL import Image, ImageDraw, ImageFont

IMAGE_SIDE = 256
CONTENT_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
DEFAULT_FORMAT = "png"  # the docs give no default for output_format
_FONT_SIZE = 12
_WRAP = 34  # characters a line holds at that size


@cache
def _font() -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    # Pillow's own embedded font: the same glyphs on every machine with the pinned Pillow.
    return ImageFont.load_default(size=_FONT_SIZE)


def image_format(inputs: dict[str, Any]) -> str:
    """The format an image task renders: `output_format` when it is one the simulator knows, else PNG."""
    fmt = inputs.get("output_format")
    return fmt if isinstance(fmt, str) and fmt in CONTENT_TYPES else DEFAULT_FORMAT


def lora_key(inputs: dict[str, Any]) -> tuple[tuple[str, float], ...]:
    """The LoRAs of an inference body as (path, scale) pairs, hashable for the render cache."""
    loras = inputs.get("loras")
    if not isinstance(loras, list):
        return ()
    return tuple((str(lora.get("path", "")), float(lora.get("scale", 1.0))) for lora in loras if isinstance(lora, dict))


@lru_cache(maxsize=256)  # a task's images are fetched more than once (retries, faults, expected_image)
def render(prompt: str, seed: int, loras: tuple[tuple[str, float], ...], index: int, fmt: str) -> bytes:
    """Image `index` of a task: colours from a digest of what decides it, then its prompt, seed and LoRAs."""
    digest = hashlib.sha256(json.dumps([prompt, seed, loras, index]).encode()).digest()
    background = (digest[0], digest[1], digest[2])
    ink = (0, 0, 0) if sum(background) > 384 else (255, 255, 255)
    image = Image.new("RGB", (IMAGE_SIDE, IMAGE_SIDE), background)
    draw = ImageDraw.Draw(image)
    band = IMAGE_SIDE // 8  # a stripe in the digest's second colour, so images differ at a glance
    draw.rectangle((0, IMAGE_SIDE - band, IMAGE_SIDE, IMAGE_SIDE), fill=(digest[3], digest[4], digest[5]))
    lines = [f"seed {seed}  image {index}"]
    lines += [f"lora {path.rsplit('/', 1)[-1][:24]} x{scale:g}" for path, scale in loras]
    lines += textwrap.wrap(prompt, _WRAP)
    lines_that_fit = (IMAGE_SIDE - band) // (_FONT_SIZE + 3) - 1
    for row, line in enumerate(lines[:lines_that_fit]):
        draw.text((6, 6 + row * (_FONT_SIZE + 3)), line, fill=ink, font=_font())
    out = io.BytesIO()
    image.save(out, format=fmt.upper(), **({"quality": 90} if fmt != "png" else {}))
    return out.getvalue()
