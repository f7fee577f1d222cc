"""WaveSpeed webhook signatures (v3): hex HMAC-SHA256 over "id.timestamp.body".

Not Standard Webhooks: the key is the secret minus its `whsec_` prefix, used as UTF-8 text.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from itertools import pairwise

_ASCII_SECONDS = re.compile(r"[0-9]{1,12}")  # not str.isdigit(): it admits superscripts and fullwidth digits
_SEPARATORS = re.compile(r"[\s,]+")
_HEX_DIGEST = re.compile(r"[0-9a-fA-F]{64}")
MAX_HEADER_LENGTH = 4096  # well beyond a few signatures; longer headers are not WaveSpeed's
MAX_CANDIDATES = 16


class InvalidSignature(Exception):
    """The request is not a genuine, fresh WaveSpeed webhook. The reason is safe to log."""


class SignatureMismatch(InvalidSignature):
    """Well-formed and fresh, but signed with another key (or another body)."""


def _key(secret: str) -> bytes:
    return secret.removeprefix("whsec_").encode("utf-8")


def signature(secret: str, webhook_id: str, timestamp: str, body: bytes) -> str:
    signed = webhook_id.encode("utf-8") + b"." + timestamp.encode("utf-8") + b"." + body
    return hmac.new(_key(secret), signed, hashlib.sha256).hexdigest()


def signature_candidates(header: str) -> list[str]:
    """Every v3 digest in a signature header: `v3,<hex>`, with or without a space after the comma,
    several separated by spaces, or by commas (API Gateway joins repeated headers with ',')."""
    tokens = [t for t in _SEPARATORS.split(header) if t]
    found = [value for version, value in pairwise(tokens) if version == "v3"]
    return [value.lower() for value in found if _HEX_DIGEST.fullmatch(value)][:MAX_CANDIDATES]


def verify(headers: Mapping[str, str], body: bytes, secret: str, *, now: float, tolerance: int) -> str:
    """Check the three webhook headers; return the webhook id or raise InvalidSignature."""
    lowered = {k.lower(): v for k, v in headers.items()}
    webhook_id = lowered.get("webhook-id", "").strip()
    timestamp = lowered.get("webhook-timestamp", "").strip()
    header = lowered.get("webhook-signature", "").strip()
    if not webhook_id or not timestamp or not header:
        raise InvalidSignature("missing webhook-id, webhook-timestamp or webhook-signature header")
    if len(webhook_id) > 256 or len(header) > MAX_HEADER_LENGTH:
        raise InvalidSignature("webhook-id or webhook-signature header too long")
    if not _ASCII_SECONDS.fullmatch(timestamp):
        raise InvalidSignature("webhook-timestamp is not Unix seconds")
    if abs(now - int(timestamp)) > tolerance:
        raise InvalidSignature("webhook-timestamp is outside the allowed window")
    candidates = signature_candidates(header)
    if not candidates:
        raise InvalidSignature("webhook-signature has no v3 signature")
    expected = signature(secret, webhook_id, timestamp, body).encode()
    matched = False
    for candidate in candidates:  # compare every one: the time taken does not tell which matched
        matched |= hmac.compare_digest(candidate.encode(), expected)
    if not matched:
        raise SignatureMismatch("signature does not match")
    return webhook_id
