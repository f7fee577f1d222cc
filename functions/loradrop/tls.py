"""One TLS context per process for every HTTPS client (WaveSpeed's API, its CDN).

An httpx client made with the default `verify` builds its own, and a submission uses a fresh client each
time (see WaveSpeedClient.submit_training). The context trusts certifi's roots, as httpx's default does."""

from __future__ import annotations

import ssl
from functools import cache
from pathlib import Path

import certifi


@cache
def tls_context() -> ssl.SSLContext:
    """Certificate and hostname checks on, against certifi's roots."""
    bundle = Path(certifi.where())
    # The dependencies layer also carries the roots one per file, under their subject hash
    # (layers/deps/hash_certificates.py): OpenSSL then reads the one a handshake needs, where the bundle has
    # all ~120 parsed up front (~17 ms CPU at StoreWeights' init). A pip-installed certifi has the bundle alone.
    hashed = bundle.with_name("hashed")
    if hashed.is_dir():
        return ssl.create_default_context(capath=hashed)
    return ssl.create_default_context(cafile=bundle)
