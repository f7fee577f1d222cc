"""WaveSpeed credentials from Secrets Manager, and the webhook secret that goes with them."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache

from aws_lambda_powertools.utilities import parameters
from botocore.config import Config

from loradrop.deadline import Deadline


class CredentialsError(RuntimeError):
    """The secret is missing or does not hold an API key (a deployment problem)."""


@dataclass(frozen=True)
class WaveSpeedCredentials:
    api_key: str = field(repr=False)
    webhook_secret: str | None = field(default=None, repr=False)


@cache
def _secrets() -> parameters.SecretsProvider:
    """Secrets Manager answers in milliseconds: a stuck call fails in seconds, well inside any function's time
    (botocore's own defaults wait 60 s to connect and 60 s to read, longer than the webhook's 15 s timeout)."""
    return parameters.SecretsProvider(
        boto_config=Config(connect_timeout=3, read_timeout=5, retries={"mode": "standard", "max_attempts": 2})
    )


def load_credentials(secret_id: str, max_age: int, force: bool = False) -> WaveSpeedCredentials:
    """Read `{"api_key": ..., "webhook_secret"?: ...}`, cached by Powertools for `max_age` seconds."""
    value = _secrets().get(secret_id, transform="json", max_age=max_age, force_fetch=force)
    if not isinstance(value, dict) or not isinstance(value.get("api_key"), str) or not value["api_key"]:
        raise CredentialsError(f"secret {secret_id} must be JSON with a non-empty string 'api_key'")
    webhook_secret = value.get("webhook_secret")
    return WaveSpeedCredentials(value["api_key"], webhook_secret if isinstance(webhook_secret, str) else None)


class WebhookSecretSource:
    """The secret webhooks are signed with: from the secret if it holds one, else from WaveSpeed.

    On a signature mismatch the receiver may ask for a refresh (the secret may have been rotated);
    refreshes are rate limited so forged requests cannot make us hammer WaveSpeed.
    """

    def __init__(
        self,
        credentials: Callable[[bool], WaveSpeedCredentials],
        fetch_from_wavespeed: Callable[[Deadline | None], str],
        *,
        min_refresh_interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._credentials = credentials
        self._fetch = fetch_from_wavespeed
        self._interval = min_refresh_interval
        self._clock = clock
        self._cached: str | None = None
        self._refreshed_at: float | None = None

    def get(self, deadline: Deadline | None = None) -> str:
        if self._cached is None:
            self._cached = self._load(False, deadline)
        return self._cached

    def refresh(self, deadline: Deadline | None = None) -> str | None:
        """A fresh secret, or None when the last refresh was too recent."""
        now = self._clock()
        if self._refreshed_at is not None and now - self._refreshed_at < self._interval:
            return None
        self._refreshed_at = now
        fresh = self._load(True, deadline)
        if fresh == self._cached:
            return None
        self._cached = fresh
        return fresh

    def _load(self, force: bool, deadline: Deadline | None) -> str:
        configured = self._credentials(force).webhook_secret
        return configured if configured else self._fetch(deadline)
