"""WaveSpeed webhook signatures (v3): hex HMAC-SHA256 over "id.timestamp.body".

Not Standard Webhooks: the key is the secret minus its `whsec_` prefix, used as UTF-8 text.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping


class InvalidSignature(Exception):
    """The request is not a genuine, fresh WaveSpeed webhook. The reason is safe to log."""


class SignatureMismatch(InvalidSignature):
    """Well-formed and fresh, but signed with another key (or another body)."""


def _key(secret: str) -> bytes:
    return secret.removeprefix("whsec_").encode("utf-8")


def signature(secret: str, webhook_id: str, timestamp: str, body: bytes) -> str:
    signed = webhook_id.encode("utf-8") + b"." + timestamp.encode("utf-8") + b"." + body
    return hmac.new(_key(secret), signed, hashlib.sha256).hexdigest()


def verify(headers: Mapping[str, str], body: bytes, secret: str, *, now: float, tolerance: int) -> str:
    """Check the three webhook headers; return the webhook id or raise InvalidSignature."""
    lowered = {k.lower(): v for k, v in headers.items()}
    webhook_id = lowered.get("webhook-id", "").strip()
    timestamp = lowered.get("webhook-timestamp", "").strip()
    header = lowered.get("webhook-signature", "").strip()
    if not webhook_id or not timestamp or not header:
        raise InvalidSignature("missing webhook-id, webhook-timestamp or webhook-signature header")
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise InvalidSignature("webhook-timestamp is not Unix seconds")
    if abs(now - int(timestamp)) > tolerance:
        raise InvalidSignature("webhook-timestamp is outside the allowed window")
    expected = signature(secret, webhook_id, timestamp, body)
    matched = False
    for candidate in header.split():  # tolerate several space-separated signatures
        version, _, value = candidate.partition(",")
        if version == "v3" and hmac.compare_digest(value.strip().lower().encode(), expected.encode()):
            matched = True
    if not matched:
        raise SignatureMismatch("signature does not match")
    return webhook_id
