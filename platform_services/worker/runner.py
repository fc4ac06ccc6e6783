"""The ingestion worker (the runbook's ``celery_worker``).

Every ``WORKER_INTERVAL_S`` it refreshes the prices of the ``WATCHLIST``
symbols whose cached quote has expired, through the same cache → providers
path as the API, and stores them in the ``prices`` hypertable; every
``WORKER_NEWS_INTERVAL_S`` it fetches NewsAPI headlines for one watchlist
symbol (round robin) into ``news_articles``.

Quotas: every call goes through the quota ledger, and the worker only uses
``WORKER_QUOTA_SHARE`` (80 %) of each window, leaving the rest for API
requests. While ``emergency_rate_limit`` exists it makes no provider call at
all (the ledger refuses them) and says so in the log once per cycle.

Scaling (``stackdeck scale worker=N``, up to 3): every worker is an active
standby. A Redis lock (``worker:lock``) makes one cycle run at a time, and
each interval slot (``floor(epoch / WORKER_INTERVAL_S)``) is claimed by one
worker only (``SET worker:cycle:<slot> NX``): N workers make the calls of
one, and when the one that ran the last cycles stops, another claims the next
slot (within one interval). With the worker scaled to 0 the API keeps serving
(from the cache, the providers and the stored prices).

Liveness: ``worker:heartbeat`` (JSON, with a TTL; the latest of any worker)
and this worker's field of the hash ``worker:heartbeats`` (by hostname, so
the console and ``/api/health`` can tell the workers apart) are refreshed
every ``WORKER_HEARTBEAT_S`` seconds while the loop is alive;
``python3 -m platform_services.worker --check`` exits 0 when it is fresh.
After each heartbeat written to Redis the loop also touches the file named by
``WORKER_HEARTBEAT_FILE`` (when set): compose's health check reads that
file's age, without starting Python (see heartbeat.py). The file is removed
when the worker starts and stops, so it only ever stands for this process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import signal
import socket
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import prometheus_client
from redis.asyncio import Redis
from redis.exceptions import RedisError

from platform_services.db.store import Store
from platform_services.market import MarketService
from platform_services.providers import keys
from platform_services.providers.clients import (
    NewsApiClient,
    ProviderError,
    build_clients,
    new_http_client,
)
from platform_services.providers.ledger import QuotaLedger
from platform_services.settings import Settings, get_settings
from platform_services.telemetry import setup_logging
from platform_services.worker.heartbeat import (
    heartbeat_file_path,
    remove_heartbeat_file,
    touch_heartbeat_file,
)

log = logging.getLogger("platform_services.worker")

RELEASE_LOCK_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _fields(**fields: Any) -> dict[str, Any]:
    return {"fields": fields}


class Worker:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.redis = Redis.from_url(
            settings.redis_url, decode_responses=True, socket_timeout=5, socket_connect_timeout=3
        )
        self.store = Store(settings.database_url, min_size=1, max_size=2)
        self.store.application_name = "investment-worker"
        self.http = new_http_client(settings)
        self.providers = settings.providers()
        self.ledger = QuotaLedger(self.redis, self.providers)
        self.clients = build_clients(settings, self.http)
        self.market = MarketService(settings, self.redis, self.store, self.ledger, self.clients)
        self.watchlist = settings.watchlist_symbols()
        self.hostname = socket.gethostname()
        self.identity = f"{self.hostname}:{os.getpid()}"
        self.heartbeat_file = heartbeat_file_path()
        self.stopping = asyncio.Event()
        self.cycles = 0
        self.last_cycle: dict[str, Any] = {}
        self._news_index = 0
        self._release = self.redis.register_script(RELEASE_LOCK_LUA)

    async def close(self) -> None:
        await self.http.aclose()
        with contextlib.suppress(Exception):
            await self.redis.aclose()
        await self.store.close()

    # --- heartbeat -----------------------------------------------------------------------

    async def heartbeat(self) -> None:
        payload = {
            "ts": datetime.now(UTC).isoformat(),
            "epoch": time.time(),
            "worker": self.identity,
            "version": self.settings.app_version,
            "cycles": self.cycles,
            "last_cycle": self.last_cycle,
            "watchlist": self.watchlist,
        }
        ttl = math.ceil(self.settings.worker_heartbeat_max_age_s * 2)
        body = json.dumps(payload)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(keys.WORKER_HEARTBEAT_KEY, body, ex=ttl)
            pipe.hset(keys.WORKER_HEARTBEATS_KEY, self.hostname, body)
            pipe.expire(keys.WORKER_HEARTBEATS_KEY, ttl)
            pipe.hgetall(keys.WORKER_HEARTBEATS_KEY)
            *_, beats = await pipe.execute()
        # fields of workers gone for longer than the TTL (removed containers)
        alive = keys.alive_workers(beats, time.time(), ttl)
        stale = [host for host in beats if host not in alive]
        if stale:
            await self.redis.hdel(keys.WORKER_HEARTBEATS_KEY, *stale)

    async def heartbeat_loop(self) -> None:
        """Only the long-running loop touches the heartbeat file (a one-off
        ``--once`` in the same container must not stand for it)."""
        while not self.stopping.is_set():
            try:
                await self.heartbeat()
            except RedisError as exc:
                log.warning("heartbeat failed", extra=_fields(error=type(exc).__name__))
            else:
                touch_heartbeat_file(self.heartbeat_file)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), self.settings.worker_heartbeat_s)

    # --- cycles ---------------------------------------------------------------------------

    async def run_cycle(self, *, news: bool, slot: int | None = None) -> dict[str, Any]:
        """One ingestion pass over the watchlist; returns a summary (also
        logged). ``slot``: the interval slot of the schedule, run only when no
        other worker has claimed it (a one-off ``--once`` passes none)."""
        token = uuid.uuid4().hex
        interval = self.settings.worker_interval_s
        lock_ttl = max(30, int(interval))
        if not await self.redis.set(keys.WORKER_LOCK_KEY, token, nx=True, ex=lock_ttl):
            summary: dict[str, Any] = {"skipped": "another worker holds the cycle lock"}
            log.info("cycle skipped", extra=_fields(**summary, worker=self.identity))
            return summary
        try:
            if slot is not None:
                key = keys.worker_cycle_key(slot)
                ttl = max(2, math.ceil(2 * interval))
                if not await self.redis.set(key, self.identity, nx=True, ex=ttl):
                    holder = await self.redis.get(key)
                    if isinstance(holder, bytes):
                        holder = holder.decode(errors="replace")
                    summary = {"skipped": f"cycle of slot {slot} run by {holder}", "slot": slot}
                    log.info("cycle skipped", extra=_fields(**summary, worker=self.identity))
                    return summary
            return await self._cycle(news=news, slot=slot)
        finally:
            with contextlib.suppress(RedisError):
                await self._release(keys=[keys.WORKER_LOCK_KEY], args=[token])

    async def _cycle(self, *, news: bool, slot: int | None = None) -> dict[str, Any]:
        started = time.perf_counter()
        began = time.time()
        emergency, ttl = await self.ledger.emergency()
        if emergency:
            skipped: dict[str, Any] = {
                "emergency_rate_limit": True,
                "emergency_ttl_s": ttl,
                "fetched": 0,
            }
            log.warning("emergency rate limit active: no provider calls", extra=_fields(**skipped))
            self.last_cycle = skipped | {"at": datetime.now(UTC).isoformat()}
            return skipped
        result = await self.market.lookup(
            self.watchlist,
            count_stats=False,
            quota_share=self.settings.worker_quota_share,
            stop_on_unknown=False,
        )
        stored = await self.market.persist(result.fresh_quotes)
        summary: dict[str, Any] = {
            "symbols": len(self.watchlist),
            "fresh_in_cache": sum(1 for e in result.entries.values() if e.source == "cache"),
            "fetched": len(result.fresh_quotes),
            "stored": stored,
            "unknown": result.unknown,
            "unavailable": sorted(result.unavailable),
        }
        if news:
            summary["news"] = await self._news()
        summary["duration_s"] = round(time.perf_counter() - started, 3)
        summary["worker"] = self.identity
        summary["slot"] = slot
        summary["began"] = round(began, 3)
        summary["ended"] = round(time.time(), 3)
        self.cycles += 1
        self.last_cycle = {k: v for k, v in summary.items() if k != "unavailable"} | {
            "at": datetime.now(UTC).isoformat()
        }
        log.info("cycle done", extra=_fields(**summary))
        return summary

    async def _news(self) -> dict[str, Any]:
        client = self.clients.get("newsapi")
        if not isinstance(client, NewsApiClient) or not self.watchlist:
            return {"skipped": "no news provider"}
        symbol = self.watchlist[self._news_index % len(self.watchlist)]
        self._news_index += 1
        spec = self.providers["newsapi"]
        admission = await self.ledger.acquire(
            "newsapi", limit=math.floor(spec.limit * self.settings.worker_quota_share)
        )
        if not admission.admitted:
            return {"symbol": symbol, "skipped": f"quota {admission.reason}"}
        started = time.perf_counter()
        outcome = "ok"
        articles = []
        try:
            articles = await client.everything(symbol, page_size=10)
        except ProviderError as exc:
            outcome = exc.outcome
        latency = round((time.perf_counter() - started) * 1000, 1)
        with contextlib.suppress(Exception):
            await self.store.log_call(
                "newsapi",
                "everything",
                symbol,
                outcome,
                latency,
                self.settings.call_price("newsapi"),
            )
        stored = 0
        if articles:
            try:
                stored = await self.store.insert_articles(symbol, articles)
            except Exception as exc:  # the next cycle tries again
                log.warning("articles not stored", extra=_fields(error=type(exc).__name__))
        return {"symbol": symbol, "outcome": outcome, "articles": stored}

    async def run(self) -> None:
        log.info(
            "worker started",
            extra=_fields(
                watchlist=self.watchlist,
                interval_s=self.settings.worker_interval_s,
                quota_share=self.settings.worker_quota_share,
            ),
        )
        # a previous run's file, where the folder outlives the process (no tmpfs)
        remove_heartbeat_file(self.heartbeat_file)
        beat = asyncio.create_task(self.heartbeat_loop())
        next_news = 0.0
        try:
            while not self.stopping.is_set():
                now = time.monotonic()
                news = now >= next_news
                slot = math.floor(time.time() / self.settings.worker_interval_s)
                try:
                    summary = await self.run_cycle(news=news, slot=slot)
                    if news and "skipped" not in summary:
                        next_news = now + self.settings.worker_news_interval_s
                except Exception as exc:  # the loop must survive outages
                    log.warning("cycle failed", extra=_fields(error=type(exc).__name__))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), self.settings.worker_interval_s)
        finally:
            self.stopping.set()
            await beat
            remove_heartbeat_file(self.heartbeat_file)
            # a stopped worker is not counted alive for another heartbeat age
            with contextlib.suppress(RedisError):
                await self.redis.hdel(keys.WORKER_HEARTBEATS_KEY, self.hostname)
            log.info("worker stopped", extra=_fields(cycles=self.cycles))


async def _serve(settings: Settings, once: bool) -> int:
    worker = Worker(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, worker.stopping.set)
    try:
        if once:
            summary = await worker.run_cycle(news=True)
            await worker.heartbeat()
            print(json.dumps(summary, default=str))
        else:
            await worker.run()
    finally:
        await worker.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m platform_services.worker")
    parser.add_argument("--check", action="store_true", help="exit 0 if the heartbeat is fresh")
    parser.add_argument("--once", action="store_true", help="run one cycle and exit")
    args = parser.parse_args(argv)
    settings = get_settings()
    if args.check:
        from platform_services.worker.check import check

        return check(settings.redis_url, settings.worker_heartbeat_max_age_s)
    setup_logging(settings.log_level)
    port = os.environ.get("WORKER_METRICS_PORT", "")
    if port and not args.once:
        # Its provider-call and quota counters, for Prometheus (not published).
        prometheus_client.start_http_server(int(port))
    return asyncio.run(_serve(settings, args.once))
