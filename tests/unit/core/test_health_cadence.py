"""How often the health source asks each check (console/core/sources/health.py):
nginx's paths and each colour's /api/health every poll, the rest (deep paths
and frontends per colour, /metrics) at most ``refresh.health_slow`` apart and
at once after a change (docs/PERFORMANCE.md, "Third pass")."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import httpx
import pytest

from console.core.config import Settings
from console.core.sources.health import (
    FRONTEND_PATH,
    HEALTH_PATHS,
    TARGETS,
    HealthSource,
    slow_checks_due,
)

from .conftest import FakeClock

INTERVAL, SLOW = 5.0, 15.0
METRICS = (
    "# TYPE http_request_duration_seconds histogram\n"
    'http_request_duration_seconds_bucket{{le="0.1"}} {n}\n'
    'http_request_duration_seconds_bucket{{le="+Inf"}} {n}\n'
)


# --- the rule (pure) -------------------------------------------------------------------


def test_the_slow_checks_are_asked_first_and_after_a_change() -> None:
    assert slow_checks_due(None, slow_every=SLOW, interval=INTERVAL, changed=False)
    assert slow_checks_due(0.1, slow_every=SLOW, interval=INTERVAL, changed=True)
    assert not slow_checks_due(5.0, slow_every=SLOW, interval=INTERVAL, changed=False)
    assert not slow_checks_due(10.0, slow_every=SLOW, interval=INTERVAL, changed=False)


@pytest.mark.parametrize("jitter", [-0.4, 0.0, 0.4, 2.0])
def test_every_third_poll_never_later_than_the_staleness(jitter: float) -> None:
    """Polls 5 s apart give or take ``jitter``: the slow checks every third
    poll, so a failure they alone would see waits at most 15 s (+ the
    jitter), the panel's staleness at 5 s (``3 × interval``)."""
    last: float | None = None
    asked: list[int] = []
    for k in range(12):
        t = k * INTERVAL + (jitter if k % 2 else 0.0)
        if slow_checks_due(
            None if last is None else t - last, slow_every=SLOW, interval=INTERVAL, changed=False
        ):
            asked.append(k)
            last = t
    assert asked == [0, 3, 6, 9]


# --- the source on a fake nginx ---------------------------------------------------------


class Nginx:
    """nginx with both colours and both frontends up; counts requests by
    path; ``failing`` paths (through nginx) answer 503."""

    def __init__(self) -> None:
        self.asked: Counter[str] = Counter()
        self.failing: set[str] = set()
        self.scraped = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.asked[path] += 1
        if path.endswith("/metrics"):
            self.scraped += 1
            return httpx.Response(200, text=METRICS.format(n=10 * self.scraped))
        if path in self.failing:
            return httpx.Response(503, json={"status": "unhealthy", "detail": "db down"})
        return httpx.Response(200, json={"status": "ok", "version": "v1.2.3", "colour": "blue"})


@pytest.fixture
def source_and_nginx(clean_env: Path) -> tuple[HealthSource, Nginx, FakeClock]:
    nginx = Nginx()
    clock = FakeClock()
    client = httpx.AsyncClient(base_url="http://127.0.0.1:9", transport=httpx.MockTransport(nginx))
    settings = Settings(repo_root=clean_env)
    assert settings.refresh.health == INTERVAL and settings.refresh.health_slow == SLOW
    return HealthSource(settings, clock=clock, client=client), nginx, clock


async def test_deep_paths_frontends_and_metrics_every_third_poll(
    source_and_nginx: tuple[HealthSource, Nginx, FakeClock],
) -> None:
    source, nginx, clock = source_and_nginx
    snaps = []
    for _ in range(6):
        snaps.append(await source.poll())
        clock.advance(INTERVAL)
    for path in (*HEALTH_PATHS, FRONTEND_PATH):
        assert nginx.asked[path] == 6  # through nginx: every poll
    for colour in ("blue", "green"):
        assert nginx.asked[f"/direct/{colour}/api/health"] == 6
        for path in HEALTH_PATHS[1:]:
            assert nginx.asked[f"/direct/{colour}{path}"] == 2, path  # polls 1 and 4
        assert nginx.asked[f"/direct/frontend_{colour}{FRONTEND_PATH}"] == 2
        # every poll until the first p95 (two scrapes), then with the rest
        assert nginx.asked[f"/direct/{colour}/metrics"] == 3  # polls 1, 2 and 4
    # every poll shows every check (the slow ones' last results between)
    keys = {(r.path, r.target) for r in snaps[0].results}
    assert keys == {(p, t) for p in (*HEALTH_PATHS, FRONTEND_PATH) for t in TARGETS}
    assert all({(r.path, r.target) for r in s.results} == keys for s in snaps)
    # the p95 from the second scrape on (the second poll), kept between scrapes
    assert snaps[0].p95_seconds is None and snaps[1].p95_seconds is not None
    assert snaps[2].p95_seconds == snaps[1].p95_seconds


async def test_a_change_through_nginx_asks_every_check_at_once(
    source_and_nginx: tuple[HealthSource, Nginx, FakeClock],
) -> None:
    source, nginx, clock = source_and_nginx
    await source.poll()
    clock.advance(INTERVAL)
    nginx.failing.add("/api/health/database")
    snap = await source.poll()  # poll 2: not due by time, due by the change
    assert nginx.asked["/direct/green/api/health/database"] == 2
    assert nginx.asked["/direct/green/api/health/cache"] == 2
    failed = [r for r in snap.results if r.status == 503]
    assert [(r.path, r.target) for r in failed] == [("/api/health/database", "nginx")]
    clock.advance(INTERVAL)
    await source.poll()  # poll 3: nothing changed since poll 2
    assert nginx.asked["/direct/green/api/health/database"] == 2
