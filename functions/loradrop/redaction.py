"""Keep credentials out of text that leaves a handler: job items, events and log lines.

WaveSpeed's errors may echo the request, and the request holds the presigned ZIP link: its query
string is a credential (signature, access key id, session token) for as long as it lives. Every URL
query is cut, and anything shaped like a key, token or signature is masked.
"""

from __future__ import annotations

import json
import re
from typing import Any

REDACTED = "<redacted>"
_URL_QUERY = re.compile(r"(?P<base>\bhttps?://[^\s?#\"'<>\\]+)\?[^\s\"'<>\\]*")
_SECRETS = (
    (re.compile(r"whsec_[A-Za-z0-9+/=_-]+"), f"whsec_{REDACTED}"),
    (re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"), REDACTED),
    (re.compile(r"(?i)\bBearer\s+[A-Za-z0-9._~+/=-]+"), f"Bearer {REDACTED}"),
    (
        re.compile(
            r"(?i)\b(x-amz-signature|x-amz-credential|x-amz-security-token|signature|api[_-]?key|secret|token)"
            r"(\"?\s*[:=]\s*\"?)[^&\s\"',;]+"
        ),
        rf"\1\2{REDACTED}",
    ),
)


def redact(text: str) -> str:
    text = _URL_QUERY.sub(lambda match: f"{match.group('base')}?{REDACTED}", text)
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


def json_for_logs(record: Any) -> str:
    """Powertools' log serializer, redacted: every log line of every handler passes through here."""
    return redact(json.dumps(record, default=str, separators=(",", ":"), ensure_ascii=False))
