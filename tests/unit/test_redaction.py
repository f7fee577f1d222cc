"""What redaction cuts out of text that leaves a handler, and what it leaves for the user to read."""

from __future__ import annotations

import json

import pytest

from loradrop.redaction import json_for_logs, redact

LINK = (
    "https://up.s3.amazonaws.com/uploads/ana.zip?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=ASIAXAMPLEKEY1234567%2F20261125%2Fus-east-1%2Fs3%2Faws4_request"
    "&X-Amz-Security-Token=IQoJb3JpZ2luX2VjEJr&X-Amz-Signature=9f8e7d6c5b4a"
)


@pytest.mark.parametrize(
    ("text", "kept", "gone"),
    [
        (
            f"invalid input: {json.dumps({'data': LINK})}",
            "https://up.s3.amazonaws.com/uploads/ana.zip?<redacted>",
            "9f8e7d6c5b4a",
        ),
        (f"media URL {LINK} not reachable", "uploads/ana.zip", "IQoJb3JpZ2luX2VjEJr"),
        ("key ASIAXAMPLEKEY1234567 used", "key <redacted> used", "ASIAXAMPLEKEY1234567"),
        ("Authorization: Bearer sk-live-abc.def", "Bearer <redacted>", "sk-live-abc.def"),
        ("secret whsec_abc123+/= leaked", "whsec_<redacted>", "abc123"),
        ('{"api_key": "k-123", "x": 1}', '"api_key": "<redacted>"', "k-123"),
        ("signature=deadbeef&size=3", "size=3", "deadbeef"),
    ],
)
def test_credentials_are_cut_and_the_rest_is_kept(text: str, kept: str, gone: str) -> None:
    cleaned = redact(text)
    assert kept in cleaned
    assert gone not in cleaned


def test_plain_text_is_untouched() -> None:
    text = "WaveSpeed task 12ab failed with code 1401: lora_rank must be between 1 and 64 (fix the input)"
    assert redact(text) == text


def test_log_lines_are_redacted_json() -> None:
    line = json_for_logs({"message": "WaveSpeed refused", "reason": f"echo {LINK}", "zoë": "ok"})
    assert json.loads(line)["reason"] == "echo https://up.s3.amazonaws.com/uploads/ana.zip?<redacted>"
    assert "zoë" in line
