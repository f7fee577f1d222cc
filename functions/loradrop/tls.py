"""One TLS context per process for every HTTPS client (WaveSpeed's API, its CDN).

An httpx client made with the default `verify` builds its own, and a submission uses a fresh client each
time (see WaveSpeedClient.submit_training). The context trusts certifi's roots, as httpx's default does."""

from __future__ import annotations

import ssl
from functools import cache
from pathlib import Path

import certifi

# The dependencies layer also carries certifi's roots one per file, under their subject hash
# (layers/deps/hash_certificates.py): OpenSSL then reads the one a handshake needs, where the bundle has
# all ~120 parsed up front (~17 ms CPU at StoreWeights' init). A pip-installed certifi has the bundle alone.
HASHED_ROOTS = Path(certifi.where()).with_name("hashed")


@cache
def tls_context() -> ssl.SSLContext:
    """Certificate and hostname checks on, against certifi's roots."""
    if HASHED_ROOTS.is_dir():
        return ssl.create_default_context(capath=HASHED_ROOTS)
    return ssl.create_default_context(cafile=certifi.where())
