"""Configuration of the API, the worker and the market simulator.

Every field is read from the environment under its upper-case name (no
prefix): the names are the ones of docs/CONTRACT.md and ``.env.example``.
Secrets are ``SecretStr`` so they never show up in a repr or a log line.

On Docker Swarm the secrets are Docker secrets instead: files under
``/run/secrets`` named after the field (``jwt_secret``, ``postgres_password``,
...), read when that folder exists (the environment still wins). The URLs then
carry no password: ``postgres_password`` / ``redis_password`` fill it in
(compose/docker-compose.swarm.yml).
"""

from __future__ import annotations

import os
from functools import lru_cache
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from platform_services.providers.keys import (
    DEFAULT_NEWSAPI_DAILY_LIMIT,
    ProviderSpec,
    provider_table,
)

SECRETS_DIR = "/run/secrets"
"""Where Docker mounts a service's secrets (one file per secret)."""


def with_password(url: str, user: str, password: str) -> str:
    """``url`` with ``user:password@`` when it names no password (a Docker
    secret's value; percent-encoded, so any character is safe)."""
    parts = urlsplit(url)
    if not password or parts.password is not None or not parts.hostname:
        return url
    netloc = parts.netloc.rsplit("@", 1)[-1]
    name = parts.username if parts.username is not None else user
    return urlunsplit(
        parts._replace(netloc=f"{quote(name, safe='')}:{quote(password, safe='')}@{netloc}")
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    # --- identity ---------------------------------------------------------
    app_version: str = "dev"
    """Release of this build (``v1.2.3``); reported by /api/health."""
    app_colour: str = ""
    """``blue`` or ``green`` for the two API colours, empty elsewhere."""

    # --- stores -----------------------------------------------------------
    database_url: str = "postgresql://postgres@localhost:5432/investment_db"
    """PostgreSQL DSN (``postgresql://user:pw@host:5432/db``)."""
    redis_url: str = "redis://localhost:6379/0"
    postgres_password: SecretStr = SecretStr("")
    """Put into ``database_url`` when it names no password (Swarm: a Docker secret)."""
    redis_password: SecretStr = SecretStr("")
    """Put into ``redis_url`` when it names no password (Swarm: a Docker secret)."""
    db_pool_min: int = 1
    db_pool_max: int = 5
    db_timeout_s: float = 3.0
    """Connect and per-statement timeout of the health checks."""

    # --- auth ---------------------------------------------------------------
    jwt_secret: SecretStr = SecretStr("")
    """HS256 key. Login refuses to issue tokens while it is shorter than 16 characters."""
    jwt_expire_minutes: int = Field(default=30, ge=1, le=24 * 60)
    jwt_issuer: str = "investment-api"
    admin_token: SecretStr = SecretStr("")
    """Static bearer token accepted for admin endpoints (runbook: ``$ADMIN_TOKEN``)."""
    admin_username: str = "admin"
    admin_password: SecretStr = SecretStr("")
    test_username: str = "test"
    test_password: SecretStr = SecretStr("")
    login_max_failures: int = 5
    """Attempts per username and client IP without a success; the next one gets 429.
    Counted before the password is checked, so parallel guesses cannot slip through."""
    login_window_s: int = 300
    """How long attempts are remembered after the last one (and the longest Retry-After)."""

    # --- providers ------------------------------------------------------------
    alpha_vantage_api_key: SecretStr = SecretStr("offline-sim")
    finnhub_api_key: SecretStr = SecretStr("offline-sim")
    polygon_api_key: SecretStr = SecretStr("offline-sim")
    newsapi_key: SecretStr = SecretStr("offline-sim")
    alpha_vantage_base_url: str = "http://market-sim:8100/alphavantage"
    finnhub_base_url: str = "http://market-sim:8100/finnhub"
    polygon_base_url: str = "http://market-sim:8100/polygon"
    newsapi_base_url: str = "http://market-sim:8100/newsapi"
    newsapi_daily_limit: int = Field(default=DEFAULT_NEWSAPI_DAILY_LIMIT, ge=0)
    price_providers: str = "finnhub,polygon,alpha_vantage"
    """Order in which quote providers are tried (most generous quota first)."""
    provider_timeout_s: float = 5.0
    price_cache_ttl_s: int = Field(default=300, ge=1)
    """How long a quote is served from Redis before a provider is asked again."""
    cache_stats_delay_s: float = Field(default=1.0, ge=0)
    """How long the API may keep cache hit/miss counts before adding them to
    Redis's totals (``/api/metrics/cache``; the process that answers it adds
    its own first). 0: on every request, one more Redis round trip each."""
    unknown_symbol_ttl_s: int = Field(default=3600, ge=1)
    """How long "no provider knows this symbol" is remembered (saves quota)."""
    unknown_symbol_consensus: int = Field(default=2, ge=1)
    """Providers that must say "unknown" before the rest are not asked."""
    health_reachability_ttl_s: float = 30.0
    """Age after which /api/health refreshes its provider reachability probe."""

    # --- cost model (see platform_services/api/cost.py) ------------------------
    monthly_budget: float = 50.0
    cost_compute_usd_per_day: float = 1.30
    """Server (2 cores, 4 GB) share per day."""
    cost_storage_usd_per_gb_month: float = 0.10
    cost_storage_base_gb: float = 20.0
    """Provisioned disk billed whatever the database size."""
    cost_call_overhead_usd: float = 0.0001
    """Per outbound provider call (egress, metering), on top of the provider's price."""
    cost_per_call_alpha_vantage: float = 0.0
    cost_per_call_finnhub: float = 0.0
    cost_per_call_polygon: float = 0.0
    cost_per_call_newsapi: float = 0.0

    # --- HTTP hardening -------------------------------------------------------
    cors_origins: str = ""
    """Comma-separated origins allowed by CORS; empty: no CORS headers at all."""
    max_body_bytes: int = 16 * 1024
    request_deadline_s: float = 8.0
    """A request that has not started answering by then gets 503 + Retry-After
    (below nginx's 10 s read timeout, which site.conf derives from it, and
    typical clients' timeouts; above any healthy request)."""
    enable_docs: bool = False
    """Serve /api/docs (Swagger UI) and relax the CSP for it."""

    # --- price stream (GET /api/ws/prices, platform_services/api/stream.py) -----
    ws_max_connections: int = Field(default=200, ge=1)
    """Open price-stream WebSockets per API process; the next is refused (503)."""
    ws_queue_size: int = Field(default=64, ge=1)
    """Messages waiting for one client; past it the oldest is dropped."""
    ws_heartbeat_s: float = Field(default=15.0, gt=0.0)
    """Seconds between heartbeat messages (keeps nginx's read timeout, 60 s, away)."""

    # --- worker -----------------------------------------------------------------
    watchlist: str = "AAPL,MSFT,GOOGL,AMZN,NVDA"
    worker_interval_s: float = Field(default=300.0, ge=1.0)
    """Seconds between two ingestion cycles."""
    worker_news_interval_s: float = Field(default=1800.0, ge=1.0)
    worker_quota_share: float = Field(default=0.8, gt=0.0, le=1.0)
    """Share of each window the worker may use; the rest is kept for API requests."""
    worker_heartbeat_s: float = Field(default=10.0, ge=1.0)
    worker_heartbeat_max_age_s: float = 60.0

    # --- market-sim ------------------------------------------------------------
    sim_host: str = "0.0.0.0"
    sim_port: int = 8100
    sim_enforce_quotas: bool = True
    """Refuse calls beyond the real free-tier quotas, as the real providers do."""

    log_level: str = "INFO"

    # --- derived -------------------------------------------------------------------

    @model_validator(mode="after")
    def _passwords_into_urls(self) -> Settings:
        self.database_url = with_password(
            self.database_url, "postgres", self.postgres_password.get_secret_value()
        )
        self.redis_url = with_password(self.redis_url, "", self.redis_password.get_secret_value())
        return self

    def providers(self) -> dict[str, ProviderSpec]:
        return provider_table(self.newsapi_daily_limit)

    def price_provider_order(self) -> list[str]:
        known = self.providers()
        order = [p.strip() for p in self.price_providers.split(",") if p.strip()]
        return [p for p in order if p in known and known[p].kind == "prices"]

    def call_price(self, provider: str) -> float:
        """USD charged per call to ``provider`` (its price plus the overhead)."""
        price = float(getattr(self, f"cost_per_call_{provider}", 0.0))
        return price + self.cost_call_overhead_usd

    def watchlist_symbols(self) -> list[str]:
        from platform_services.symbols import parse_symbols

        return parse_symbols(self.watchlist, max_symbols=100)

    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    @property
    def daily_target(self) -> float:
        """The runbook's alert threshold: the budget spread over 30 days ($1.67)."""
        return round(self.monthly_budget / 30, 2)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    # A missing secrets folder is no error (compose passes everything in the
    # environment), but pydantic-settings warns about one it is told to read.
    secrets_dir = SECRETS_DIR if os.path.isdir(SECRETS_DIR) else None
    return Settings(_secrets_dir=secrets_dir)  # type: ignore[call-arg]
