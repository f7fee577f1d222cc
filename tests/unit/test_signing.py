"""Webhook signatures, against vectors computed here independently with hmac."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loradrop.signing import InvalidSignature, SignatureMismatch, signature, signature_candidates, verify

SECRET = "whsec_c2VjcmV0LWJ1dC1ub3QtYmFzZTY0"
BODY = b'{"id":"task-1","status":"completed","outputs":["https://cdn.example/lora.safetensors"]}'
NOW = 1_800_000_000


def reference(secret: str, webhook_id: str, timestamp: str, body: bytes) -> str:
    # The key is the text after whsec_, as UTF-8 bytes (not base64-decoded).
    key = secret[len("whsec_") :].encode()
    return hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def headers(sig: str, webhook_id: str = "task-1", timestamp: int = NOW) -> dict[str, str]:
    return {"Webhook-Id": webhook_id, "Webhook-Timestamp": str(timestamp), "Webhook-Signature": sig}


def test_signature_matches_reference_vector() -> None:
    assert signature(SECRET, "task-1", str(NOW), BODY) == reference(SECRET, "task-1", str(NOW), BODY)
    # Fixed vector, so a change to the scheme cannot pass unnoticed.
    assert signature("whsec_abc", "id", "1", b"{}") == hmac.new(b"abc", b"id.1.{}", hashlib.sha256).hexdigest()


def test_valid_webhook_verifies_and_returns_its_id() -> None:
    good = "v3," + reference(SECRET, "task-1", str(NOW), BODY)
    assert verify(headers(good), BODY, SECRET, now=NOW + 10, tolerance=300) == "task-1"


def test_several_signatures_one_valid() -> None:
    good = "v3," + reference(SECRET, "task-1", str(NOW), BODY)
    assert verify(headers(f"v3,deadbeef {good}"), BODY, SECRET, now=NOW, tolerance=300) == "task-1"


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda h: h | {"Webhook-Signature": "v3," + "0" * 64}, "does not match"),
        (lambda h: h | {"Webhook-Signature": h["Webhook-Signature"].replace("v3,", "v1,")}, "no v3 signature"),
        (lambda h: h | {"Webhook-Id": "task-2"}, "does not match"),
        (lambda h: {k: v for k, v in h.items() if k != "Webhook-Signature"}, "missing"),
        (lambda h: {k: v for k, v in h.items() if k != "Webhook-Id"}, "missing"),
        (lambda h: h | {"Webhook-Timestamp": "yesterday"}, "not Unix seconds"),
        (lambda h: h | {"Webhook-Timestamp": str(NOW - 301)}, "outside the allowed window"),
        (lambda h: h | {"Webhook-Timestamp": str(NOW + 301)}, "outside the allowed window"),
        (lambda h: h | {"Webhook-Timestamp": "²"}, "not Unix seconds"),  # str.isdigit() says True
        (lambda h: h | {"Webhook-Timestamp": "\uff11\uff12\uff13"}, "not Unix seconds"),  # fullwidth 123
        (lambda h: h | {"Webhook-Timestamp": "1" * 13}, "not Unix seconds"),
        (lambda h: h | {"Webhook-Signature": "v3," + "0" * 5000}, "too long"),
        (lambda h: h | {"Webhook-Signature": "v3,nothex"}, "no v3 signature"),
    ],
    ids=[
        "forged",
        "v1-scheme",
        "other-id",
        "no-signature",
        "no-id",
        "bad-timestamp",
        "stale",
        "future",
        "superscript-digit",
        "fullwidth-digits",
        "too-many-digits",
        "huge-header",
        "not-hex",
    ],
)
def test_rejections(mutate, reason: str) -> None:  # type: ignore[no-untyped-def]
    good = headers("v3," + reference(SECRET, "task-1", str(NOW), BODY))
    with pytest.raises(InvalidSignature, match=reason):
        verify(mutate(good), BODY, SECRET, now=NOW, tolerance=300)


def test_other_body_or_other_secret_is_a_mismatch() -> None:
    good = headers("v3," + reference(SECRET, "task-1", str(NOW), BODY))
    with pytest.raises(SignatureMismatch):
        verify(good, BODY + b" ", SECRET, now=NOW, tolerance=300)
    with pytest.raises(SignatureMismatch):
        verify(good, BODY, "whsec_another", now=NOW, tolerance=300)


def test_base64_decoded_key_is_not_what_wavespeed_uses() -> None:
    import base64

    wrong_key = base64.b64decode(SECRET[len("whsec_") :])
    standard = hmac.new(wrong_key, f"task-1.{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    with pytest.raises(SignatureMismatch):
        verify(headers("v3," + standard), BODY, SECRET, now=NOW, tolerance=300)


@pytest.mark.parametrize(
    "shape",
    [
        "v3,{good}",
        "v3, {good}",  # a space after the comma
        "v3,{bad} v3,{good}",  # several, space-separated
        "v3,{bad},v3,{good}",  # two headers joined by API Gateway with a comma
        "v1,{bad}, v3,{good}",
        "  v3,{GOOD}  ",  # upper-case hex
    ],
)
def test_signature_header_shapes(shape: str) -> None:
    good = reference(SECRET, "task-1", str(NOW), BODY)
    header = shape.format(good=good, GOOD=good.upper(), bad="0" * 64)
    assert verify(headers(header), BODY, SECRET, now=NOW, tolerance=300) == "task-1"


_tokens = st.sampled_from(["v3", "v1", "v3,", ",", " ", ", ", "\t", "GOOD", "0" * 64, "zz", "²", "v3,GOOD"])


@settings(max_examples=500)
@given(
    parts=st.lists(st.one_of(_tokens, st.text(max_size=12)), max_size=12),
    timestamp=st.one_of(st.just(str(NOW)), st.text(max_size=14)),
    webhook_id=st.one_of(st.just("task-1"), st.text(max_size=300)),
)
def test_any_header_shape_verifies_or_is_invalid_never_crashes(
    parts: list[str], timestamp: str, webhook_id: str
) -> None:
    good = reference(SECRET, "task-1", str(NOW), BODY)
    header = "".join(parts).replace("GOOD", good)
    given_headers = {"webhook-id": webhook_id, "webhook-timestamp": timestamp, "webhook-signature": header}
    try:
        verify(given_headers, BODY, SECRET, now=NOW, tolerance=300)
    except InvalidSignature:
        return
    # It verified: so the id and timestamp were the genuine ones, and a v3 token carried the digest
    assert (webhook_id.strip(), timestamp.strip()) == ("task-1", str(NOW))
    assert good in signature_candidates(header)
