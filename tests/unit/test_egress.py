"""Which weights URLs StoreWeights will fetch."""

from __future__ import annotations

import httpx
import pytest

from loradrop.egress import DisallowedOutput, OutputPolicy
from loradrop.weights import open_output

PUBLIC = {"d1.cloudfront.net": ["13.32.1.1"], "evil.cloudfront.net": ["169.254.169.254"], "cdn.wavespeed.ai": ["::1"]}


def resolver(host: str, port: int) -> list[str]:
    if host not in PUBLIC:
        raise OSError("no such host")
    return PUBLIC[host]


POLICY = OutputPolicy("*.cloudfront.net, *.wavespeed.ai, http://127.0.0.1:8123", resolver)


def test_allowed_public_https_host() -> None:
    POLICY.check("https://d1.cloudfront.net/x/lora.safetensors")


def test_explicit_local_origin() -> None:
    POLICY.check("http://127.0.0.1:8123/outputs/t/lora.safetensors")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://d1.cloudfront.net/x", "only https"),
        ("https://example.com/x", "not in OUTPUT_HOSTS"),
        ("https://cloudfront.net/x", "not in OUTPUT_HOSTS"),
        ("https://d1.cloudfront.net.evil.com/x", "not in OUTPUT_HOSTS"),
        ("https://evil.cloudfront.net/x", "non-public address"),
        ("https://cdn.wavespeed.ai/x", "non-public address"),
        ("https://gone.cloudfront.net/x", "does not resolve"),
        ("http://127.0.0.1:9001/2018-06-01/runtime/invocation/next", "only https"),
        ("https://127.0.0.1:8123/x", "not in OUTPUT_HOSTS"),
        ("http://169.254.169.254/latest/meta-data/", "only https"),
        ("https://10.0.0.5/x", "not in OUTPUT_HOSTS"),
        ("https://user:pw@d1.cloudfront.net/x", "credentials"),
        ("file:///etc/passwd", "no host"),
    ],
)
def test_refused(url: str, reason: str) -> None:
    with pytest.raises(DisallowedOutput, match=reason):
        POLICY.check(url)


class _Stream:
    def __init__(self, address: str) -> None:
        self.address = address

    def get_extra_info(self, name: str) -> object:
        return (self.address, 443) if name == "server_addr" else None


@pytest.mark.parametrize(("peer", "allowed"), [("13.32.1.1", True), ("127.0.0.1", False), ("10.0.0.7", False)])
def test_the_connected_address_is_checked_not_only_the_resolved_one(peer: str, allowed: bool) -> None:
    # DNS said 13.32.1.1 when check() asked; the connection then reached `peer` (rebinding)
    def serve(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"weights", extensions={"network_stream": _Stream(peer)})

    with httpx.Client(transport=httpx.MockTransport(serve)) as http:
        if allowed:
            open_output(http, "https://d1.cloudfront.net/x/lora.safetensors", POLICY).close()
        else:
            with pytest.raises(DisallowedOutput, match=f"connected to a non-public address \\({peer}\\)"):
                open_output(http, "https://d1.cloudfront.net/x/lora.safetensors", POLICY)


def test_an_unknown_peer_is_refused_for_named_hosts() -> None:
    with (
        httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200))) as http,
        pytest.raises(DisallowedOutput, match="cannot be checked"),
    ):
        open_output(http, "https://d1.cloudfront.net/x/lora.safetensors", POLICY)
