"""Which URLs StoreWeights may download from.

OUTPUT_HOSTS is a comma-separated list. A bare name (`cdn.example.com`) or wildcard
(`*.cloudfront.net`) allows https only, and only when every address the name resolves to is
public. An entry with a scheme (`http://127.0.0.1:8123`) allows exactly that origin, whatever its
address: that is how the local stack admits its simulator. Nothing else is fetched.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from urllib.parse import urlsplit


class DisallowedOutput(ValueError):
    """The weights URL points somewhere loradrop will not fetch from."""


Resolver = Callable[[str, int], list[str]]


def resolve(host: str, port: int) -> list[str]:
    return [str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


def _origin(scheme: str, host: str, port: int | None) -> str:
    default = 443 if scheme == "https" else 80
    return f"{scheme}://{host}:{port or default}"


class OutputPolicy:
    def __init__(self, setting: str, resolver: Resolver = resolve) -> None:
        self._names: list[str] = []
        self._origins: set[str] = set()
        for raw in (part.strip().lower() for part in setting.split(",")):
            if not raw:
                continue
            if "://" in raw:
                parts = urlsplit(raw)
                self._origins.add(_origin(parts.scheme, parts.hostname or "", parts.port))
            else:
                self._names.append(raw)
        self._resolve = resolver

    def _name_allowed(self, host: str) -> bool:
        for pattern in self._names:
            if pattern.startswith("*."):
                if host.endswith(pattern[1:]) and host != pattern[2:]:
                    return True
            elif host == pattern:
                return True
        return False

    def check(self, url: str) -> None:
        try:
            parts = urlsplit(url)
            host = (parts.hostname or "").lower()
            port = parts.port
        except ValueError as err:
            raise DisallowedOutput(f"malformed URL: {err}") from None
        if not host:
            raise DisallowedOutput("URL has no host")
        if parts.username or parts.password:
            raise DisallowedOutput("URL carries credentials")
        if _origin(parts.scheme, host, port) in self._origins:
            return
        if parts.scheme != "https":
            raise DisallowedOutput(f"only https downloads are allowed, not {parts.scheme or 'no scheme'}")
        if not self._name_allowed(host):
            raise DisallowedOutput(f"host {host} is not in OUTPUT_HOSTS")
        try:
            addresses = self._resolve(host, port or 443)
        except OSError as err:
            raise DisallowedOutput(f"host {host} does not resolve: {err}") from None
        for address in addresses:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
            if not ip.is_global:
                raise DisallowedOutput(f"host {host} resolves to a non-public address ({ip})")

    def check_peer(self, url: str, peer: str | None) -> None:
        """Check the address the open connection really reached: DNS can answer differently between
        check() and the connect (rebinding), so the resolved-name check alone is not enough."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if _origin(parts.scheme, host, parts.port) in self._origins:
            return
        if peer is None:
            raise DisallowedOutput(f"the address {host} connected to is unknown, so it cannot be checked")
        ip = ipaddress.ip_address(peer.split("%", 1)[0])
        if not ip.is_global:
            raise DisallowedOutput(f"host {host} connected to a non-public address ({ip})")
