"""Hostile input, counted: what `make reliability` throws at the stack and what got through.

Four kinds: broken or malicious ZIPs, forged or malformed webhooks, weights URLs that point inside
the network (SSRF), and random webhook bodies and header shapes. For each, the report counts how
many were tried, accepted, caused a state change or an outbound request, or produced a 5xx — all
four goals but the first are 0.
"""

from __future__ import annotations

import base64
import io
import json
import random
import socket
import threading
import time
import zipfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from loradrop_local.aws.events import http_api_event

if TYPE_CHECKING:
    from loradrop_dev.reliability.harness import Harness

PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)


@dataclass
class HostileRow:
    kind: str
    tried: int = 0
    accepted: int = 0
    changed_or_outbound: int = 0
    server_errors: int = 0

    @property
    def passed(self) -> bool:
        return self.tried > 0 and self.accepted == self.changed_or_outbound == self.server_errors == 0


# ----- the corpora -----
def _zip(files: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in files.items():
            archive.writestr(zipfile.ZipInfo(name), data, compress_type=compression)
    return buffer.getvalue()


def _patched_central(data: bytes, offset: int, value: bytes) -> bytes:
    """Change a field of the last central directory entry (what inspection reads)."""
    start = data.rfind(b"PK\x01\x02")
    return data[: start + offset] + value + data[start + offset + len(value) :]


def bad_zips() -> dict[str, bytes]:
    good = _zip({"a.png": PNG, "b.png": PNG})
    symlink = io.BytesIO()
    with zipfile.ZipFile(symlink, "w") as archive:
        info = zipfile.ZipInfo("a.png")
        info.create_system = 3
        info.external_attr = 0o120777 << 16
        archive.writestr(info, "/etc/passwd")
    bomb = _zip({"a.png": PNG, "bomb.png": bytes(64 * 1024 * 1024)}, zipfile.ZIP_DEFLATED)
    return {
        "empty file": b"",
        "not a ZIP": b"just some notes, not an archive",
        "truncated ZIP": good[: len(good) // 2],
        "no images": _zip({"notes.txt": b"hello"}),
        "path traversal": _zip({"../../escape.png": PNG}),
        "absolute path": _zip({"/etc/cron.d/x.png": PNG}),
        "symbolic link": symlink.getvalue(),
        "encrypted entry": _patched_central(good, 8, b"\x01\x00"),
        "ZIP bomb": bomb,
        "NUL in a name": _zip({"a\x00.png": PNG}),
        "too many entries": _zip({f"{i}.png": b"" for i in range(2001)}),
        "bzip2 entries": _patched_central(good, 10, (12).to_bytes(2, "little")),
        "zstd entries": _patched_central(good, 10, (93).to_bytes(2, "little")),
        "deflate64 entries": _patched_central(good, 10, (9).to_bytes(2, "little")),
        "split archive": good[:-22] + good[-22:-18] + b"\x01\x00" + good[-16:],
    }


def forged_webhooks(task: dict[str, Any], secret: str, sign: Any) -> dict[str, tuple[dict[str, str], bytes]]:
    """Requests that must not move a job: each a (headers, body) for a genuine task's id."""
    body = json.dumps(task).encode()
    now = str(int(time.time()))

    def headers(timestamp: str = now, signature: str | None = None, webhook_id: str = task["id"]) -> dict[str, str]:
        return {
            "content-type": "application/json",
            "webhook-id": webhook_id,
            "webhook-timestamp": timestamp,
            "webhook-signature": signature if signature is not None else sign(webhook_id, timestamp, body),
        }

    good = headers()
    tampered = json.dumps(task | {"outputs": ["https://evil.example/x.safetensors"]}).encode()
    nested = b'{"id": "x", "deep": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    return {
        "no signature": ({k: v for k, v in good.items() if k != "webhook-signature"}, body),
        "no webhook-id": ({k: v for k, v in good.items() if k != "webhook-id"}, body),
        "no timestamp": ({k: v for k, v in good.items() if k != "webhook-timestamp"}, body),
        "signed with another secret": (headers(signature=sign(task["id"], now, body, "whsec_not-ours")), body),
        "v1 scheme": (headers(signature=good["webhook-signature"].replace("v3,", "v1,")), body),
        "tampered body": (good, tampered),
        "another id's signature": (headers(webhook_id="other-task") | {"webhook-id": task["id"]}, body),
        "stale timestamp": (headers(timestamp=str(int(now) - 3600)), body),
        "future timestamp": (headers(timestamp=str(int(now) + 3600)), body),
        "superscript timestamp": (headers(timestamp="\u00b2"), body),
        "fullwidth timestamp": (headers(timestamp="\uff11\uff12\uff13"), body),
        "huge signature header": (headers(signature="v3," + "0" * 8000), body),
        "signature not hex": (headers(signature="v3,zz"), body),
        "signed, not JSON": (headers(signature=sign(task["id"], now, b"\xff\xfe")), b"\xff\xfe"),
        "signed, nested 50,000 deep": (headers(signature=sign(task["id"], now, nested)), nested),
        "signed, over the size cap": (
            headers(signature=sign(task["id"], now, b"{" + b" " * 300_000 + b"}")),
            b"{" + b" " * 300_000 + b"}",
        ),
    }


def ssrf_targets(port: int) -> list[str]:
    return [
        f"http://127.0.0.1:{port}/lora.safetensors",
        f"https://127.0.0.1:{port}/lora.safetensors",
        f"http://localhost:{port}/2018-06-01/runtime/invocation/next",
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "https://10.20.30.40/lora.safetensors",
        "https://[::1]/lora.safetensors",
        "http://d1example.cloudfront.net/lora.safetensors",
        "https://evil.example.com/lora.safetensors",
        "file:///etc/passwd",
        f"https://user:pass@127.0.0.1:{port}/x",
    ]


class Listener:
    """A loopback port that counts connections: proof that nothing was fetched from it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


def random_webhooks(count: int, task_id: str, seed: int = 9) -> list[tuple[dict[str, str], bytes, bool]]:
    """Random header shapes and bodies (seeded, so every run tries the same): (headers, body, base64)."""
    rng = random.Random(seed)
    alphabet = "v3v1,, \t0123456789abcdef\u00b2\uff11xyz-_.{}[]\"'\\\x00\u00e9"

    def text(limit: int) -> str:
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, limit)))

    def value() -> str:
        return rng.choice(
            [
                text(40),
                "v3," + "".join(rng.choice("0123456789abcdef") for _ in range(64)),
                str(rng.randint(-(10**12), 10**13)),
            ]
        )

    requests = []
    for _ in range(count):
        headers = {
            name: value() for name in ("webhook-id", "webhook-timestamp", "webhook-signature") if rng.random() < 0.8
        }
        if rng.random() < 0.3:
            headers["webhook-id"] = task_id
        shape = rng.random()
        if shape < 0.3:
            body = rng.randbytes(rng.randint(0, 512))
        elif shape < 0.6:
            body = json.dumps(
                {"id": task_id, "status": rng.choice(["completed", "failed", None, 7]), "x": text(20)}
            ).encode()
        else:
            body = json.dumps([text(10), rng.randint(0, 9), {text(5): None}]).encode()
        requests.append((headers, body, rng.random() < 0.2))
    return requests


# ----- running them -----
def run_hostile(h: Harness, fuzz_count: int) -> list[HostileRow]:
    return [_bad_zips(h), *_webhook_attacks(h, fuzz_count), _ssrf(h)]


def _bad_zips(h: Harness) -> HostileRow:
    """Broken and malicious ZIPs: REJECTED, never sent to WaveSpeed."""
    stack = h.stack
    zips = HostileRow("broken or malicious ZIPs")
    errors_before = len(stack.handler_errors)
    for label, data in bad_zips().items():
        tracked = h.upload_bytes(f"hostile-zip-{label.replace(' ', '-')}", data)
        h.wait(tracked, timeout=30)
        job = tracked[0].job or {}
        zips.tried += 1
        zips.accepted += job.get("status") != "REJECTED"
        zips.changed_or_outbound += h.posts_for(tracked[0])
    zips.server_errors = len(stack.handler_errors) - errors_before
    return zips


def _webhook_attacks(h: Harness, fuzz_count: int) -> list[HostileRow]:
    """Forged and malformed webhooks over HTTP, then random ones straight into the handler, all aimed at a job
    waiting for its webhook: it must not move, and nothing may ask WaveSpeed for the task."""
    stack, sim = h.stack, h.sim
    sim.faults.webhook.append("drop")
    target = h.upload("hostile-target", 1)
    h.wait(target, timeout=30, statuses={"SUBMITTED"})
    waiting = stack.job(target[0].job_id) or {}
    task = sim.tasks[waiting["prediction_id"]]
    while task.status not in ("completed", "failed"):
        time.sleep(0.02)
    public = task.public(sim.url)

    def result_gets() -> int:
        return sum(1 for r in list(sim.requests) if r.path.startswith("/api/v3/predictions/") and r.method == "GET")

    # 2. Forged and malformed webhooks, over real HTTP through the API Gateway stand-in
    forged = HostileRow("forged or malformed webhooks")
    gets = result_gets()
    for headers, body in forged_webhooks(public, sim.config.webhook_secret, sim.sign).values():
        raw_headers = {name.encode(): value.encode() for name, value in headers.items()}  # non-ASCII goes out as sent
        answer = httpx.post(stack.webhook_url, content=body, headers=raw_headers, timeout=30)
        forged.tried += 1
        forged.accepted += answer.status_code < 400
        forged.server_errors += answer.status_code >= 500
    forged.changed_or_outbound = (result_gets() - gets) + (stack.job(waiting["job_id"]) != waiting)

    # 3. Random webhook bodies and header shapes, straight into the handler
    fuzzed = HostileRow("random webhook bodies and header shapes")
    gets = result_gets()
    for headers, body, encoded in random_webhooks(fuzz_count, task.id):
        event = http_api_event("POST", "/webhooks/wavespeed", headers, body, "203.0.113.9")
        if encoded:
            event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
        try:
            status = int(stack.invoke("ReceiveWebhookFunction", event)["statusCode"])
        except Exception:
            status = 500
        fuzzed.tried += 1
        fuzzed.accepted += status < 400
        fuzzed.server_errors += status >= 500
    fuzzed.changed_or_outbound = (result_gets() - gets) + (stack.job(waiting["job_id"]) != waiting)
    h.post_webhook(task)  # let the target finish, so nothing is left waiting
    h.wait(target, timeout=30)
    return [forged, fuzzed]


def _ssrf(h: Harness) -> HostileRow:
    """Weights URLs pointing inside the network: refused without a connection."""
    stack, sim = h.stack, h.sim
    ssrf = HostileRow("weights URLs pointing inside (SSRF)")
    listener = Listener()
    errors_before = len(stack.handler_errors)
    try:
        targets = ssrf_targets(listener.port)
        for url in targets:
            tracked = h.upload_with("hostile-ssrf", [(sim.faults.output, url)])
            h.wait(tracked, timeout=30)
            ssrf.tried += 1
            ssrf.accepted += (tracked[0].job or {}).get("error_code") != "OUTPUT_REFUSED"
        redirect = h.upload_with(
            "hostile-redirect", [(sim.faults.download, f"redirect:http://127.0.0.1:{listener.port}/x")] * 5
        )
        h.wait(redirect, timeout=40)
        ssrf.tried += 1
        ssrf.accepted += (redirect[0].job or {}).get("error_code") != "OUTPUT_REFUSED"
        ssrf.changed_or_outbound = listener.connections
    finally:
        listener.close()
    ssrf.server_errors = len(stack.handler_errors) - errors_before
    return ssrf
