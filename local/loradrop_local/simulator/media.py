"""What a task downloads while it runs, as WaveSpeed would: the training ZIP, an image task's LoRAs.

A link that does not work (an expired or unsigned presigned URL, a 404, a host that does not answer) fails
the task with 1402, the documented "media URL not reachable".
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import httpx

from loradrop_local.simulator.validation import INVALID_PARAMETER, Problem, is_url

UNREACHABLE = 1402


class Unreachable(Exception):
    """The link gives nothing to read; the message says why, without the link (it may be presigned)."""


def zip_problem(http: httpx.Client, url: str) -> Problem | None:
    """Fetch the training data's first bytes: None when it is a ZIP."""
    try:
        head = fetch_head(http, url, 4)
    except Unreachable as err:
        return UNREACHABLE, str(err)
    if not head.startswith(b"PK"):
        return INVALID_PARAMETER, "data is not a ZIP archive"
    return None


def lora_problem(http: httpx.Client, paths: list[str]) -> tuple[Problem | None, int]:
    """Fetch each LoRA given as a link: (the first problem naming its LoRA, or None; how many were fetched).
    A Hugging Face repo id is taken as found: the simulator never reaches the Hub."""
    fetched = 0
    for index, path in enumerate(paths):
        if not is_url(path):
            continue
        try:
            fetch_head(http, path, 8)
        except Unreachable as err:
            return (UNREACHABLE, f"loras[{index}].path: {err}"), fetched
        fetched += 1
    return None, fetched


def fetch_head(http: httpx.Client, url: str, length: int) -> bytes:
    """The first `length` bytes at `url`, after the checks a presigned S3 link must pass; raises Unreachable."""
    query = parse_qs(urlsplit(url).query)
    if query.get("X-Amz-Algorithm") == ["AWS4-HMAC-SHA256"]:
        try:
            signed = datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
            expires = int(query["X-Amz-Expires"][0])
        except (KeyError, ValueError):
            raise Unreachable("media URL is not a valid presigned URL") from None
        if time.time() > signed.timestamp() + expires:
            raise Unreachable("media URL expired")
    elif "Signature" in query or "X-Amz-Signature" in query:
        raise Unreachable("media URL is not signed with SigV4")
    try:
        with http.stream("GET", url) as answer:
            if answer.status_code != 200:
                raise Unreachable(f"media URL not reachable (HTTP {answer.status_code})")
            return next(answer.iter_bytes(length), b"")
    except httpx.HTTPError as err:
        raise Unreachable(f"media URL not reachable: {err}") from err
