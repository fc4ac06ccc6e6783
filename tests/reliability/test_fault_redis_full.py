"""Fill Redis to its maxmemory (policy noeviction) while the console watches.

A full Redis must refuse writes rather than evict: the quota counters are
kept (an evicted counter would let calls through that the provider refuses),
the API says the cache is unhealthy instead of hanging or answering 500,
the console shows the failing cache check and keeps refreshing, and once the
filler keys are gone everything works again by itself.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
import redis

from tests.conftest import Stack
from tests.reliability._harness import LoadLoop, MonitorWatch, console_settings, figure

pytestmark = [pytest.mark.stack, pytest.mark.destructive]

FILL_PREFIX = "reliability:fill:"
"""Not ``cache:``: a cache flush must not be what frees the memory here."""
CHUNK = 512 * 1024


def _quota_counters(r: redis.Redis) -> dict[str, int]:
    """Quota counters that outlive the test (TTL > 5 min) and their values."""
    out = {}
    for key in r.scan_iter(match="quota:*", count=500):
        ttl = r.ttl(key)
        if ttl == -1 or ttl > 300:
            out[key.decode()] = int(r.get(key) or 0)
    return out


def _fill(r: redis.Redis, max_chunks: int) -> tuple[int, str]:
    """SET chunks until Redis refuses with OOM; (chunks written, refusal)."""
    payload = b"\0" * CHUNK
    for i in range(max_chunks):
        try:
            r.set(f"{FILL_PREFIX}{i}", payload)
        except redis.exceptions.ResponseError as exc:  # OutOfMemoryError is a subclass
            return i, str(exc)
    return max_chunks, ""


class Pinner:
    """Keeps Redis at its limit: writes ever smaller values until even a tiny
    one is refused, and tops up whenever an expiring key frees room. Bounded
    in time; stops by itself."""

    def __init__(self, r: redis.Redis, max_seconds: float = 90) -> None:
        self.r = r
        self.max_seconds = max_seconds
        self.refused = 0
        self.written = 0
        self.full = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Pinner:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        t_end = time.monotonic() + self.max_seconds
        size = 64 * 1024
        i = 0
        while not self._stop.is_set() and time.monotonic() < t_end:
            try:
                self.r.set(f"{FILL_PREFIX}pin:{i}", b"\0" * size)
                self.written += 1
                i += 1
            except redis.exceptions.ResponseError:
                self.refused += 1
                if size > 16:
                    size //= 4
                else:
                    self.full.set()
                    self._stop.wait(0.05)


def _cleanup(r: redis.Redis) -> None:
    keys = list(r.scan_iter(match=FILL_PREFIX + "*", count=1000))
    for i in range(0, len(keys), 500):
        r.unlink(*keys[i : i + 500])


async def test_redis_full_refuses_writes_keeps_quotas(stack: Stack) -> None:
    r = redis.Redis.from_url(stack.redis_url, socket_timeout=10)
    info = r.info("memory")
    maxmemory = int(info["maxmemory"])
    assert maxmemory > 0, "redis has no maxmemory: it would grow until the container is killed"
    assert info["maxmemory_policy"] == "noeviction", info["maxmemory_policy"]
    # a quota counter of our own, far in the future, that must survive
    canary = "quota:reliability_canary:day:999999"
    r.set(canary, 7, ex=3600)
    quotas_before = _quota_counters(r)
    assert canary in quotas_before
    try:
        with figure("fill Redis to maxmemory (noeviction)") as fig:
            async with MonitorWatch(console_settings(stack)) as watch:
                await watch.wait(
                    lambda: (
                        watch.latest("quotas") is not None and watch.latest("health") is not None
                    ),
                    within=30,
                    what="console has quotas and health",
                )
                with LoadLoop(stack.base_url) as load:
                    t0 = time.monotonic()
                    chunks, refusal = _fill(r, max_chunks=2 * maxmemory // CHUNK + 16)
                    fill_s = time.monotonic() - t0
                    assert refusal, (
                        f"wrote {chunks} x {CHUNK} B without a refusal (maxmemory {maxmemory})"
                    )
                    assert "OOM" in refusal or "maxmemory" in refusal, refusal
                    # writes that need memory are refused for everyone, evictions none
                    with pytest.raises(redis.exceptions.ResponseError):
                        r.set(f"{FILL_PREFIX}extra", b"\0" * CHUNK)
                    with Pinner(r) as pinner:
                        assert await asyncio.to_thread(pinner.full.wait, 60), (
                            "could not pin Redis at its limit"
                        )
                        t_full = time.monotonic()
                        rank, seen_s = await watch.seen_in_refreshes(
                            "health",
                            lambda s: any(
                                x.path == "/api/health/cache"
                                and x.target == "nginx"
                                and (x.status or 0) >= 500
                                for x in s.results
                            ),
                            since=t_full,
                            refreshes=3,
                            what="console health shows the cache check failing",
                        )
                        shown = watch.health("/api/health/cache", "nginx")
                        # the console keeps refreshing while Redis refuses writes
                        n_before = len(watch.payloads("containers"))
                        await watch.wait(
                            lambda: len(watch.payloads("containers")) >= n_before + 2,
                            within=20,
                            what="containers keep refreshing",
                        )
                        quotas_source = watch.source_state("redis")
                        assert quotas_source is not None and quotas_source.ok, quotas_source
                        assert watch.latest("quotas") is not None
                        # the quota counters are all there, unchanged or grown
                        full = _quota_counters(r)
                        for key, value in quotas_before.items():
                            assert key in full, (
                                f"quota counter {key} disappeared while Redis was full"
                            )
                            assert full[key] >= value, (
                                f"{key} went back from {value} to {full[key]}"
                            )
                        evicted = int(r.info("stats")["evicted_keys"])
                        assert evicted == 0, f"{evicted} keys evicted under noeviction"
                    # free the memory: everything comes back by itself
                    _cleanup(r)
                    t_freed = time.monotonic()
                    recover_s = await watch.wait(
                        lambda: (
                            (x := watch.health("/api/health/cache", "nginx")) is not None
                            and x.status == 200
                            and watch.payloads("health", since=t_freed)
                        ),
                        within=60,
                        what="cache check healthy again",
                    )
                    r.incr(canary)
                    assert int(r.get(canary)) == 8
                result = load.result()
            assert not result.timeouts, f"{len(result.timeouts)} requests hung"
            server_errors = [s for s in result.samples if s.status == 500]
            assert not server_errors, f"{len(server_errors)} bare 500s while Redis was full"
            fig.operator_saw = (
                f"/api/health/cache {shown.status} '{shown.error}' at health refresh #{rank} ({seen_s:.1f} s); "
                f"quota panel kept reading"
            )
            fig.recover_s = round(recover_s, 1)
            fig.load(result)
            fig.rows_acked = len(quotas_before)
            fig.rows_lost = sum(1 for k in quotas_before if k not in full)
            fig.notes = f"quota counters kept: {len(quotas_before)}/{len(quotas_before)}; evicted_keys={evicted}"
            fig.extra = {
                "maxmemory": maxmemory,
                "fill_s": round(fill_s, 1),
                "chunks": chunks,
                "pinner": [pinner.written, pinner.refused],
                "outcomes": result.outcomes(),
            }
    finally:
        _cleanup(r)
        r.delete(canary)
