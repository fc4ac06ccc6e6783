"""The API's long-lived objects (clients, pools, background tasks) in one place."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError

from platform_services import telemetry
from platform_services.api import auth
from platform_services.api.cost import CostParams, CostReport, compute_cost, with_recorded
from platform_services.api.stream import PriceHub, run_feed
from platform_services.db.store import Store
from platform_services.market import MarketService
from platform_services.providers import keys
from platform_services.providers.clients import (
    Probe,
    ProviderClient,
    build_clients,
    new_http_client,
)
from platform_services.providers.ledger import QuotaLedger
from platform_services.settings import Settings

log = logging.getLogger(__name__)

BOOTSTRAP_RETRY_S = 5.0
COST_REFRESH_S = 60.0


def new_redis(settings: Settings) -> Redis:
    """A client whose pool waits for a free connection (up to 5 s) rather than
    failing a request when ``max_connections`` are busy."""
    pool = BlockingConnectionPool.from_url(
        settings.redis_url,
        decode_responses=True,
        socket_timeout=3,
        socket_connect_timeout=2,
        health_check_interval=30,
        max_connections=50,
        timeout=5,
    )
    return Redis(connection_pool=pool)


class Platform:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.started_monotonic = time.monotonic()
        self.started_at = datetime.now(UTC)
        self.redis = new_redis(settings)
        self.store = Store(
            settings.database_url,
            min_size=settings.db_pool_min,
            max_size=settings.db_pool_max,
            timeout=settings.db_timeout_s,
        )
        self.http = new_http_client(settings)
        self.providers = settings.providers()
        self.ledger = QuotaLedger(self.redis, self.providers)
        self.clients: dict[str, ProviderClient] = build_clients(settings, self.http)
        self.market = MarketService(
            settings,
            self.redis,
            self.store,
            self.ledger,
            self.clients,
            stats_delay_s=settings.cache_stats_delay_s,
        )
        self.hub = PriceHub(settings.ws_max_connections, settings.ws_queue_size)
        self.users_ready = False
        self._probes: dict[str, Probe] = {}
        self._probed_at = 0.0
        self._probe_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._cost: tuple[float, CostReport] | None = None

    @property
    def uptime_s(self) -> float:
        return round(time.monotonic() - self.started_monotonic, 1)

    async def start(self) -> None:
        if auth.jwt_secret(self.settings) is None:
            log.warning("JWT_SECRET unset or shorter than 16 characters: login is disabled")
        if len(self.settings.admin_token.get_secret_value()) < auth.MIN_SECRET_LENGTH:
            log.warning("ADMIN_TOKEN unset or shorter than 16 characters: static token disabled")
        self._tasks.append(asyncio.create_task(self._bootstrap_loop(), name="bootstrap-users"))
        self._tasks.append(asyncio.create_task(self._probe_loop(), name="probe-providers"))
        self._tasks.append(asyncio.create_task(run_feed(self.redis, self.hub), name="price-feed"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            await self.market.flush_cache_stats()
        await self.http.aclose()
        with contextlib.suppress(Exception):
            await self.redis.aclose()
        await self.store.close()

    # --- users -------------------------------------------------------------------------

    async def _bootstrap_loop(self) -> None:
        """Create the admin and test users once the migrations made the table."""
        while not self.users_ready:
            try:
                self.users_ready = await self.bootstrap_users()
            except Exception as exc:  # retried until the database is there
                log.info("user bootstrap deferred: %s", type(exc).__name__)
            if not self.users_ready:
                await asyncio.sleep(BOOTSTRAP_RETRY_S)

    async def bootstrap_users(self) -> bool:
        if not await self.store.table_exists("users"):
            return False
        s = self.settings
        wanted = (
            (s.admin_username, s.admin_password.get_secret_value(), "admin"),
            (s.test_username, s.test_password.get_secret_value(), "user"),
        )
        for username, password, role in wanted:
            if not username or not password:
                continue
            user = await self.store.get_user(username)
            if user is None:
                hashed = await asyncio.to_thread(auth.hash_password, password)
                if await self.store.upsert_bootstrap_user(username, hashed, role):
                    log.info("bootstrap user created", extra={"fields": {"user": username}})
                continue
            matches = await asyncio.to_thread(auth.verify_password, user.password_hash, password)
            if not matches or user.role != role:
                hashed = await asyncio.to_thread(auth.hash_password, password)
                await self.store.set_password(user.id, hashed, role)
                log.info("bootstrap user updated from env", extra={"fields": {"user": username}})
        return True

    # --- providers ---------------------------------------------------------------------------

    async def _probe_loop(self) -> None:
        """Keep the reachability probes fresh, so /api/health never waits on a provider."""
        interval = max(1.0, self.settings.health_reachability_ttl_s / 2)
        while True:
            try:
                await self.probe_providers(max_age_s=interval)
            except Exception as exc:
                log.warning("provider probe failed: %s", type(exc).__name__)
            await asyncio.sleep(interval)

    async def latest_probes(self, wait_s: float = 2.0) -> dict[str, Probe]:
        """The last probe results (waiting up to ``wait_s`` for the very first ones)."""
        if not self._probes:
            try:
                return await asyncio.wait_for(self.probe_providers(max_age_s=0), timeout=wait_s)
            except TimeoutError:
                return {n: Probe(False, None, "not probed yet") for n in self.clients}
        return self._probes

    async def probe_providers(self, max_age_s: float) -> dict[str, Probe]:
        """Reachability of every provider, re-probed when older than ``max_age_s``."""
        if self._probes and time.monotonic() - self._probed_at < max_age_s:
            return self._probes
        async with self._probe_lock:
            if self._probes and time.monotonic() - self._probed_at < max_age_s:
                return self._probes
            names = [n for n in keys.PROVIDER_ORDER if n in self.clients]
            results = await asyncio.gather(*(self.clients[n].probe() for n in names))
            self._probes = dict(zip(names, results, strict=True))
            self._probed_at = time.monotonic()
            return self._probes

    # --- cost ----------------------------------------------------------------------------------

    def cost_params(self) -> CostParams:
        s = self.settings
        return CostParams(
            monthly_budget=s.monthly_budget,
            compute_usd_per_day=s.cost_compute_usd_per_day,
            storage_usd_per_gb_month=s.cost_storage_usd_per_gb_month,
            storage_base_gb=s.cost_storage_base_gb,
        )

    async def cost_report(self, max_age_s: float = 0.0) -> tuple[CostReport, list[str]]:
        """The cost report and the inputs that were missing (degraded estimate)."""
        if self._cost and time.monotonic() - self._cost[0] < max_age_s:
            return self._cost[1], []
        now = datetime.now(UTC)
        missing: list[str] = []
        since = min(now.date().replace(day=1), now.date() - timedelta(days=30))
        calls: dict[Any, dict[str, tuple[int, float]]] = {}
        db_size = 0
        try:
            calls = await self.store.call_costs_by_day(since)
            db_size = await self.store.database_size()
        except Exception as exc:  # fall back to Redis counters
            missing.append(f"database ({type(exc).__name__})")
            try:
                today = await self.ledger.calls_on(now.date().isoformat())
                calls = {
                    now.date(): {p: (n, n * self.settings.call_price(p)) for p, n in today.items()}
                }
            except RedisError as rexc:
                missing.append(f"cache ({type(rexc).__name__})")
        report = compute_cost(now, self.cost_params(), db_size, calls)
        if not missing:
            try:
                report = await self._record_cost_day(report, since)
            except Exception as exc:
                missing.append(f"cost record ({type(exc).__name__})")
        telemetry.DAILY_COST_PROJECTION.set(report.daily_projection)
        telemetry.MONTH_END_PROJECTION.set(report.month_end_projection)
        if not missing:
            self._cost = (time.monotonic(), report)
        return report, missing

    async def _record_cost_day(self, report: CostReport, since: date) -> CostReport:
        """Write today's cost so far to ``cost_days``; the report with the days recorded."""
        today = report.at.date()
        today_cost = dict(report.daily_history).get(today)
        if today_cost is not None:
            await self.store.record_cost_day(today, today_cost)
        return with_recorded(report, await self.store.cost_days(since))

    async def refresh_gauges(self) -> None:
        """Bring the scrape-time gauges up to date (quota usage, cost)."""
        with contextlib.suppress(Exception):
            for usage in await self.ledger.all_usage():
                telemetry.QUOTA_USED.labels(usage.provider).set(usage.used)
                telemetry.QUOTA_LIMIT.labels(usage.provider).set(usage.limit)
        with contextlib.suppress(Exception):
            on, _ttl = await self.ledger.emergency()
            telemetry.EMERGENCY_RATE_LIMIT.set(1 if on else 0)
        with contextlib.suppress(Exception):
            await self.cost_report(max_age_s=COST_REFRESH_S)
