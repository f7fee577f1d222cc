"""Stream LoRA weights from WaveSpeed's CDN into S3 with bounded memory, hashing on the way."""

from __future__ import annotations

import hashlib
import posixpath
import re
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urljoin, urlsplit

import httpx
from boto3.s3.transfer import TransferConfig

from loradrop.egress import DisallowedOutput, OutputPolicy
from loradrop.redaction import redact
from loradrop.safetensors import HeaderReader

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_MAX_REDIRECTS = 3
_MIB = 1024 * 1024
_CHUNK = _MIB


class DownloadFailed(Exception):
    """The download broke off or was refused; SQS will retry the message."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(redact(message))  # the CDN link may be signed
        self.status = status  # the HTTP status that refused it, if one did


class OutputTooLarge(Exception):
    """The output is bigger than any LoRA this stack expects (MaxWeightsMiB): a wrong URL, most likely."""


class CopyTimedOut(Exception):
    """The copy could not finish before the invocation's deadline; it was stopped and cleaned up."""


@dataclass(frozen=True)
class PartPlan:
    """Multipart settings: memory stays at about (concurrency + 1) x part size, whatever the file size."""

    part_size: int
    concurrency: int

    @classmethod
    def mib(cls, part_size_mib: int, concurrency: int) -> PartPlan:
        return cls(part_size_mib * _MIB, concurrency)

    def transfer_config(self) -> TransferConfig:
        """A non-seekable stream is buffered part by part; s3transfer keeps up to
        `max_in_memory_upload_chunks` parts (10 by default): cap it at one more than the threads."""
        config = TransferConfig(
            multipart_threshold=self.part_size,
            multipart_chunksize=self.part_size,
            max_concurrency=self.concurrency,
            use_threads=True,
        )
        config.max_in_memory_upload_chunks = self.concurrency + 1
        return config


@dataclass(frozen=True)
class StoredWeights:
    bucket: str
    key: str
    size: int
    sha256: str
    safetensors: dict[str, Any] = field(default_factory=dict)  # what the file's header says (HeaderReader)

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def _mib_text(size: int) -> str:
    return f"{size / _MIB:,.1f} MiB"


def weights_filename(url: str) -> str:
    """A safe object name from the URL's last path segment."""
    name = posixpath.basename(unquote(urlsplit(url).path))
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")[:120]
    return name or "weights.safetensors"


class _HashingReader:
    """A file-like view of a streamed download that hashes and counts what passes through.

    s3transfer reads one part at a time; chunks are kept as they arrived and joined once per part,
    so each byte is copied once on its way to S3.
    """

    def __init__(
        self,
        chunks: Iterator[bytes],
        expected_size: int | None,
        deadline: float | None = None,
        max_bytes: int | None = None,
    ) -> None:
        self._chunks = chunks
        self._max_bytes = max_bytes
        self._deadline = deadline  # time.monotonic() by which the copy must have given up
        self._pending: deque[bytes | memoryview] = deque()
        self._pending_size = 0
        self._expected = expected_size
        self._done = False
        self.sha256 = hashlib.sha256()
        self.header = HeaderReader()  # reads the safetensors header off the first chunks as they pass
        self.size = 0

    def _pull(self) -> None:
        if self._deadline is not None and time.monotonic() > self._deadline:
            raise CopyTimedOut(f"stopped after {self.size:,} bytes to finish before the function's timeout")
        try:
            chunk = next(self._chunks)
        except StopIteration:
            self._done = True
            if self._expected is not None and self.size != self._expected:
                raise DownloadFailed(f"download truncated: got {self.size} of {self._expected} bytes") from None
            return
        except httpx.HTTPError as err:
            raise DownloadFailed(f"download broke off after {self.size} bytes: {err!r}") from err
        self.sha256.update(chunk)
        self.header.feed(chunk)
        self.size += len(chunk)
        if self._max_bytes is not None and self.size > self._max_bytes:
            raise OutputTooLarge(f"the output grew past {_mib_text(self._max_bytes)} and was not kept")
        self._pending.append(chunk)
        self._pending_size += len(chunk)

    def read(self, amount: int = -1) -> bytes:
        while not self._done and (amount < 0 or self._pending_size < amount):
            self._pull()
        if amount < 0 or amount >= self._pending_size:
            pieces = list(self._pending)
            self._pending.clear()
        else:
            pieces, taken = [], 0
            while taken < amount:
                chunk = self._pending.popleft()
                if taken + len(chunk) > amount:  # split the chunk that crosses the part boundary
                    view = memoryview(chunk)
                    cut = amount - taken
                    self._pending.appendleft(view[cut:])
                    chunk = view[:cut]
                pieces.append(chunk)
                taken += len(chunk)
        data = bytes(pieces[0]) if len(pieces) == 1 else b"".join(pieces)
        self._pending_size -= len(data)
        return data


def peer_address(response: httpx.Response) -> str | None:
    """The IP address of the server this response came from, as the socket reports it."""
    stream = response.extensions.get("network_stream")
    address = stream.get_extra_info("server_addr") if stream is not None else None
    return str(address[0]) if address else None


def open_output(http: httpx.Client, url: str, policy: OutputPolicy, what: str = "weights") -> httpx.Response:
    """GET with redirects followed by hand, so every hop is checked against the policy (`what`: the output's name
    in errors)."""
    for _ in range(_MAX_REDIRECTS + 1):
        policy.check(url)
        # identity: Content-Length must count the bytes we hash and store
        request = http.build_request("GET", url, headers={"Accept-Encoding": "identity"})
        try:
            response = http.send(request, stream=True, follow_redirects=False)
        except httpx.HTTPError as err:
            raise DownloadFailed(f"could not download the {what}: {err!r}") from err
        try:
            policy.check_peer(url, peer_address(response))
        except DisallowedOutput:
            response.close()
            raise
        if response.status_code in (301, 302, 303, 307, 308) and "location" in response.headers:
            response.close()
            url = urljoin(url, response.headers["location"])
            continue
        if response.status_code != 200:
            response.close()
            raise DownloadFailed(f"{what} download answered HTTP {response.status_code}", status=response.status_code)
        return response
    raise DownloadFailed(f"more than {_MAX_REDIRECTS} redirects")


def transfer_weights(  # noqa: PLR0913 - keyword-only: source, destination, limits
    *,
    url: str,
    http: httpx.Client,
    policy: OutputPolicy,
    s3: S3Client,
    bucket: str,
    key: str,
    metadata: dict[str, str],
    plan: PartPlan,
    deadline: float | None = None,
    max_bytes: int | None = None,
) -> StoredWeights:
    """Stream `url` into s3://bucket/key; the object appears only if every byte arrived.

    A failure aborts this copy's own multipart upload (never another copy's of the same key), so a
    broken or timed-out download leaves neither an object nor billable orphan parts. SHA-256 and size
    are known only at the end, so they become object tags (metadata would need a second copy).
    """
    response = open_output(http, url, policy)
    try:
        length = response.headers.get("content-length")
        expected = int(length) if length and length.isdigit() else None
        if max_bytes is not None and expected is not None and expected > max_bytes:
            raise OutputTooLarge(f"the output is {_mib_text(expected)}, over the {_mib_text(max_bytes)} allowed")
        reader = _HashingReader(response.iter_raw(_CHUNK), expected, deadline, max_bytes)
        # s3transfer aborts the multipart upload it created when the copy fails, and only that one.
        # (Measured: its part uploads ran ~1.7x faster than a hand-written part loop over boto3.)
        s3.upload_fileobj(
            reader,
            bucket,
            key,
            ExtraArgs={"Metadata": metadata, "ContentType": "application/octet-stream"},
            Config=plan.transfer_config(),
        )
    finally:
        response.close()
    digest = reader.sha256.hexdigest()
    tags = {"sha256": digest, "size-bytes": str(reader.size)}
    s3.put_object_tagging(
        Bucket=bucket, Key=key, Tagging={"TagSet": [{"Key": name, "Value": value} for name, value in tags.items()]}
    )
    return StoredWeights(
        bucket=bucket, key=key, size=reader.size, sha256=digest, safetensors=reader.header.finish(reader.size)
    )
