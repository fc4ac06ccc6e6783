"""Burn rate and projected exhaustion of provider quotas."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from console.core.sources.redis_quota import burn_rate_per_hour, projected_exhaustion

DAY = 86400.0
T0 = datetime(2025, 3, 14, 0, 0, tzinfo=UTC).timestamp()  # start of a UTC day window


def test_burn_from_successive_samples() -> None:
    now = T0 + 6 * 3600
    # 10 calls in the last 5 minutes: 120/hour, whatever happened earlier today
    samples = [(now - 300, 12), (now - 120, 18), (now - 10, 21)]
    assert burn_rate_per_hour(samples, now, 22, T0, window_seconds=DAY) == pytest.approx(120.0)


def test_burn_ignores_samples_older_than_lookback() -> None:
    now = T0 + 6 * 3600
    samples = [(now - 3600, 0), (now - 300, 10)]
    rate = burn_rate_per_hour(samples, now, 20, T0, window_seconds=DAY, lookback=600)
    assert rate == pytest.approx(120.0)


def test_burn_falls_back_to_usage_since_window_start() -> None:
    now = T0 + 5 * 3600
    # first observation: 10 calls in 5 hours
    assert burn_rate_per_hour([], now, 10, T0, window_seconds=DAY) == pytest.approx(2.0)
    # a sample too recent to measure a rate (< 30 s): same fallback
    assert burn_rate_per_hour([(now - 5, 9)], now, 10, T0, window_seconds=DAY) == pytest.approx(2.0)


def test_burn_ignores_samples_of_a_previous_window() -> None:
    start = T0 + DAY  # a new day began
    now = start + 3600
    samples = [(start - 60, 25)]  # yesterday's counter
    assert burn_rate_per_hour(samples, now, 3, start, window_seconds=DAY) == pytest.approx(3.0)


def test_burn_minute_window_needs_a_shorter_span() -> None:
    start = T0
    now = start + 40
    samples = [(now - 20, 2)]  # 20 s back is enough in a 60 s window (span 15 s)
    assert burn_rate_per_hour(samples, now, 4, start, window_seconds=60) == pytest.approx(
        2 / 20 * 3600
    )


def test_burn_idle_and_at_window_start() -> None:
    assert burn_rate_per_hour([], T0 + 100, 0, T0, window_seconds=DAY) == 0.0
    assert burn_rate_per_hour([], T0, 0, T0, window_seconds=DAY) is None


def test_exhaustion_projection() -> None:
    now = datetime(2025, 3, 14, 6, 0, tzinfo=UTC)
    resets = datetime(2025, 3, 15, tzinfo=UTC)
    # 19/25 used at 2/hour: 3 hours left
    assert projected_exhaustion(19, 25, 2.0, now, resets) == now + timedelta(hours=3)
    # at 0.1/hour it would take 60 hours: not within this window
    assert projected_exhaustion(19, 25, 0.1, now, resets) is None
    assert projected_exhaustion(19, 25, 0.0, now, resets) is None
    assert projected_exhaustion(19, 25, None, now, resets) is None
    # already exhausted: now
    assert projected_exhaustion(25, 25, 0.0, now, resets) == now
    assert projected_exhaustion(30, 25, 5.0, now, resets) == now
