"""The Redis key schema and the fixed-window arithmetic (providers/keys.py)."""

from __future__ import annotations

import ast
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from platform_services.providers import keys

KEYS_SOURCE = Path(keys.__file__)


def test_keys_module_imports_only_the_standard_library() -> None:
    tree = ast.parse(KEYS_SOURCE.read_text(encoding="utf-8"))
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module.split(".")[0])
    assert modules, "parsed no imports at all"
    not_stdlib = {m for m in modules if m not in sys.stdlib_module_names and m != "__future__"}
    assert not_stdlib == set()


def test_provider_table_matches_the_seed() -> None:
    table = keys.provider_table(newsapi_daily_limit=100)
    assert {n: (s.limit, s.window) for n, s in table.items()} == {
        "alpha_vantage": (25, "day"),
        "finnhub": (60, "minute"),
        "polygon": (5, "minute"),
        "newsapi": (100, "day"),
    }
    assert table["alpha_vantage"].label == "Alpha Vantage"
    assert table["polygon"].window_seconds == 60
    assert table["newsapi"].kind == "news"


def test_newsapi_limit_comes_from_the_environment() -> None:
    assert keys.provider_table(env={"NEWSAPI_DAILY_LIMIT": "250"})["newsapi"].limit == 250
    assert keys.provider_table(env={})["newsapi"].limit == keys.DEFAULT_NEWSAPI_DAILY_LIMIT
    assert keys.provider_table(7, env={"NEWSAPI_DAILY_LIMIT": "250"})["newsapi"].limit == 7
    with pytest.raises(ValueError):
        keys.provider_table(env={"NEWSAPI_DAILY_LIMIT": "-1"})


def test_minute_windows_are_aligned_to_the_epoch() -> None:
    t = datetime(2025, 3, 4, 10, 17, 42, 500_000, tzinfo=UTC)
    assert keys.window_start(60, t) == datetime(2025, 3, 4, 10, 17, tzinfo=UTC)
    assert keys.resets_at(60, t) == datetime(2025, 3, 4, 10, 18, tzinfo=UTC)
    assert keys.seconds_until_reset(60, t) == pytest.approx(17.5)
    assert keys.window_id(60, t) == int(t.timestamp()) // 60
    # The last instant of a window and the first of the next differ.
    edge = datetime(2025, 3, 4, 10, 18, tzinfo=UTC)
    assert keys.window_id(60, edge - timedelta(microseconds=1)) + 1 == keys.window_id(60, edge)


def test_day_windows_are_utc_days() -> None:
    t = datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert keys.window_start(86400, t) == datetime(2025, 12, 31, tzinfo=UTC)
    assert keys.resets_at(86400, t) == datetime(2026, 1, 1, tzinfo=UTC)
    # The same instant expressed in another zone is the same window.
    from datetime import timezone

    tokyo = t.astimezone(timezone(timedelta(hours=9)))
    assert keys.window_id(86400, tokyo) == keys.window_id(86400, t)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError):
        keys.window_id(60, datetime(2025, 1, 1, 12, 0))


def test_quota_keys_never_fall_under_the_cache_prefix() -> None:
    t = datetime(2025, 1, 1, tzinfo=UTC)
    for spec in keys.provider_table(100).values():
        key = keys.quota_key_for(spec, t)
        assert key.startswith(keys.QUOTA_PREFIX)
        assert not key.startswith(keys.CACHE_PREFIX)
        assert spec.name in key and spec.window in key
    for other in (
        keys.EMERGENCY_KEY,
        keys.STATS_CACHE_HITS,
        keys.stats_calls_key("finnhub", date(2025, 1, 1)),
        keys.login_attempts_key("Admin", "10.0.0.1"),
        keys.WORKER_HEARTBEAT_KEY,
        keys.WORKER_HEARTBEATS_KEY,
        keys.worker_cycle_key(5870123),
    ):
        assert not other.startswith(keys.CACHE_PREFIX)
    assert keys.price_cache_key("AAPL") == "cache:price:AAPL"
    assert keys.EMERGENCY_KEY == "emergency_rate_limit"


def test_quota_key_changes_with_the_window_and_ttl_covers_the_rest_of_it() -> None:
    spec = keys.provider_table(100)["polygon"]
    t = datetime(2025, 1, 1, 0, 0, 50, tzinfo=UTC)
    assert keys.quota_key_for(spec, t) != keys.quota_key_for(spec, t + timedelta(seconds=10))
    assert keys.quota_key_for(spec, t) == keys.quota_key_for(spec, t - timedelta(seconds=50))
    assert keys.quota_ttl(spec, t) == 10 + keys.QUOTA_GRACE_S
    day = keys.provider_table(100)["alpha_vantage"]
    assert keys.quota_ttl(day, datetime(2025, 1, 1, 23, 0, tzinfo=UTC)) == 3600 + keys.QUOTA_GRACE_S


def test_statistics_keys_are_per_utc_day() -> None:
    d = date(2025, 2, 3)
    assert keys.stats_calls_key("polygon", d) == "stats:calls:polygon:2025-02-03"
    assert keys.stats_cache_key("hits", d) == "stats:cache:hits:2025-02-03"
    with pytest.raises(ValueError):
        keys.stats_cache_key("evictions", d)
    assert keys.utc_day(datetime(2025, 2, 3, 23, 30, tzinfo=UTC)) == d


def test_login_key_ignores_username_case() -> None:
    assert keys.login_attempts_key("Admin", "1.2.3.4") == keys.login_attempts_key(
        "admin", "1.2.3.4"
    )
    assert keys.login_attempts_key("admin", "1.2.3.4") != keys.login_attempts_key(
        "admin", "1.2.3.5"
    )


def test_alive_workers_by_the_age_of_their_heartbeat() -> None:
    import json

    def beat(epoch: object, host: str = "h") -> str:
        return json.dumps({"epoch": epoch, "worker": f"{host}:7", "version": "v2"})

    beats = {
        "fresh": beat(1000.0),
        "old": beat(1000.0 - 61),
        "torn": "{",
        "no-epoch": json.dumps({"worker": "x"}),
        b"bytes": beat(990.0),
        "future": beat(1000.0 + 60),  # a clock far ahead: not trusted
    }
    alive = keys.alive_workers(beats, now=1000.0, max_age_s=60)
    assert sorted(alive) == ["bytes", "fresh"]
    assert alive["fresh"]["version"] == "v2"
    assert keys.worker_cycle_key(12) == "worker:cycle:12"
