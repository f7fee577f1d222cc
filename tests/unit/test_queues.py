"""How long a rate-limited upload waits, by the account's WaveSpeed tier."""

from __future__ import annotations

import pytest

from loradrop.queues import rate_limit_backoff_seconds

TIERS = {"Bronze": (2, 2), "Silver": (500, 10), "Gold": (3000, 50), "Ultra": (5000, 85)}  # template's Tiers


def waits(tier: str, receive: int) -> list[int]:
    starts, submitters = TIERS[tier]
    return [rate_limit_backoff_seconds(receive, starts_per_minute=starts, submitters=submitters) for _ in range(200)]


@pytest.mark.parametrize("receive", [1, 3, 10])
def test_bronze_waits_one_more_minute_window_per_429(receive: int) -> None:
    delays = waits("Bronze", receive)
    assert min(delays) >= 30 * receive
    assert max(delays) <= 60 * receive
    assert len(set(delays)) > 10  # jittered, so retries do not arrive together


@pytest.mark.parametrize("tier", ["Silver", "Gold", "Ultra"])
def test_higher_tiers_wait_for_the_next_window_only(tier: str) -> None:
    for receive in (1, 5, 20):
        assert 30 <= min(waits(tier, receive)) <= max(waits(tier, receive)) <= 60


def test_waits_are_capped_below_sqs_visibility_limits() -> None:
    assert max(waits("Bronze", 40)) <= 900
