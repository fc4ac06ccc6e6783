"""Exponential backoff of failing sources."""

from __future__ import annotations

from console.core.sources.base import backoff_delay


def test_exponential_and_capped() -> None:
    delays = [backoff_delay(n, base=1.0, cap=30.0) for n in range(1, 9)]
    assert delays == [1, 2, 4, 8, 16, 30, 30, 30]


def test_no_failure_no_wait() -> None:
    assert backoff_delay(0) == 0.0
    assert backoff_delay(-3) == 0.0


def test_huge_failure_counts_do_not_overflow() -> None:
    assert backoff_delay(10_000, cap=30.0) == 30.0


def test_jitter_stays_within_bounds() -> None:
    assert backoff_delay(3, base=1.0, jitter=0.5, rng=lambda: 1.0) == 2.0
    assert backoff_delay(3, base=1.0, jitter=0.5, rng=lambda: 0.0) == 4.0
    assert backoff_delay(20, cap=30.0, jitter=0.2, rng=lambda: 0.0) == 30.0
