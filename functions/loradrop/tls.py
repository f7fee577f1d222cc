"""One TLS context per process for every HTTPS client (WaveSpeed's API, its CDN).

Building one loads the CA bundle (~30 ms measured): an httpx client made with the default `verify` builds
its own, and a submission uses a fresh client each time (see WaveSpeedClient.submit_training)."""

from __future__ import annotations

import ssl
from functools import cache

import certifi


@cache
def tls_context() -> ssl.SSLContext:
    """What httpx would build by default: certifi's CA bundle, certificate and hostname checks on."""
    return ssl.create_default_context(cafile=certifi.where())
