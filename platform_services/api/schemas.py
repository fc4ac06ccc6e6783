"""Response models: the OpenAPI document (``/openapi.json``) of every endpoint.

Handlers build their JSON directly (no per-request model validation on the hot
path); these models describe exactly what they send, for every status code an
endpoint can answer, so clients and contract fuzzers (schemathesis) can rely on
the document. The integration tests validate real responses against them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Status = Literal["healthy", "degraded", "unhealthy"]


class ErrorBody(BaseModel):
    """Every 4xx/5xx: ``detail`` (a message, or FastAPI's list of validation errors)."""

    model_config = ConfigDict(extra="allow")

    detail: Any
    error: str | None = None
    """Machine-readable code: invalid_symbols, unknown_symbols, unauthorized, ..."""


class UnknownSymbolsBody(ErrorBody):
    symbols: list[str]


class UnavailableBody(ErrorBody):
    symbols: list[str] = Field(default_factory=list)
    reasons: dict[str, str] = Field(default_factory=dict)


# --- health ---------------------------------------------------------------------


class CheckSummary(BaseModel):
    status: Status
    latency_ms: float | None = None
    error: str | None = None


class ExternalSummary(BaseModel):
    status: Status
    reachable: int
    total: int
    emergency_rate_limit: bool | None = None


class WorkerBeat(BaseModel):
    version: str | None = None
    age_s: float
    cycles: int | None = None


class WorkersSummary(BaseModel):
    """The ingestion workers with a fresh heartbeat (``worker:heartbeats``);
    informational: 0 is a scaled-down worker, not an unhealthy API."""

    alive: int | None = None
    workers: dict[str, WorkerBeat] = {}
    error: str | None = None


class HealthChecks(BaseModel):
    database: CheckSummary
    cache: CheckSummary
    external_apis: ExternalSummary
    workers: WorkersSummary | None = None


class HealthBody(BaseModel):
    status: Status
    version: str
    colour: str | None = None
    uptime_s: float
    started_at: str
    timestamp: str
    checks: HealthChecks


class DatabaseHealth(BaseModel):
    status: Status
    latency_ms: float | None = None
    error: str | None = None
    schema_version: str | None = None
    timescaledb: str | None = None
    server_version: str | None = None
    pool_size: int | None = None
    pool_idle: int | None = None


class CacheHealth(BaseModel):
    status: Status
    latency_ms: float | None = None
    error: str | None = None
    redis_version: str | None = None
    used_memory: int | None = None
    maxmemory: int | None = None
    maxmemory_policy: str | None = None
    keys: int | None = None


class ProviderHealth(BaseModel):
    label: str
    reachable: bool
    latency_ms: float | None = None
    error: str | None = None
    quota_limit: int
    quota_window: str
    quota_used: int | None = None
    quota_left: int | None = None
    resets_at: str | None = None


class ExternalApisHealth(BaseModel):
    status: Status
    emergency_rate_limit: bool | None = None
    emergency_ttl_s: int | None = None
    providers: dict[str, ProviderHealth]


# --- stocks ---------------------------------------------------------------------


class PriceItem(BaseModel):
    symbol: str
    price: float
    provider: str
    as_of: str
    """The provider's timestamp of the quote (ISO 8601, UTC)."""
    open: float | None = None
    high: float | None = None
    low: float | None = None
    previous_close: float | None = None
    change: float | None = None
    change_percent: float | None = None
    volume: int | None = None
    source: Literal["cache", "provider", "database"]
    stale: bool
    """True when served from the stored prices because no provider could be asked."""
    currency: str


class PricesBody(BaseModel):
    prices: list[PriceItem]
    count: int
    sources: dict[str, int]
    stored: int
    """Rows written to the ``prices`` hypertable by this request."""
    timestamp: str


# --- auth, admin -------------------------------------------------------------------


class TokenBody(BaseModel):
    access_token: str
    token_type: Literal["bearer"]
    expires_in: int
    expires_at: str
    username: str
    role: str


class CacheClearBody(BaseModel):
    cleared: int
    pattern: str


class HandOffBody(BaseModel):
    handed_off: int
    """Price streams of this process asked to reconnect elsewhere (closed with 1012)."""


# --- metrics ---------------------------------------------------------------------------


class RecordedDay(BaseModel):
    cost: float = Field(description="USD; today: so far, a past day: at its last record")
    first: str = Field(description="when the day's record began (ISO 8601)")
    last: str = Field(description="when it was last recorded (ISO 8601)")


class CostBody(BaseModel):
    timestamp: str
    currency: str
    daily_projection: float
    daily_target: float
    month_to_date: float
    month_end_projection: float
    monthly_budget: float
    budget_status: Literal["ok", "over"]
    components: dict[str, float]
    calls_today: dict[str, int]
    daily_history: list[list[str | float]] = Field(
        description="[date, usd] pairs for each of the last 30 UTC days, oldest first "
        "(today: so far), modelled from the fixed cost and the logged calls; never "
        "before the first recorded day."
    )
    recorded_days: dict[str, RecordedDay] = Field(
        default_factory=dict,
        description="The UTC days the platform recorded as they happened (table cost_days): "
        "a day the stack did not run has none. Empty while the database is unreachable.",
    )
    degraded_inputs: list[str]
    model: dict[str, Any]


class UsageItem(BaseModel):
    provider: str
    label: str
    used: int
    limit: int
    remaining: int
    window: str
    window_seconds: int
    resets_at: str
    calls_today: int


class EmergencyState(BaseModel):
    active: bool
    ttl_s: int | None = None


class ApiUsageBody(BaseModel):
    timestamp: str
    emergency_rate_limit: EmergencyState
    providers: dict[str, UsageItem]


class CacheStatsToday(BaseModel):
    hit_rate: float
    hits: int
    misses: int


class CacheMetricsBody(BaseModel):
    hit_rate: float
    hits: int
    misses: int
    lookups: int
    today: CacheStatsToday
    keys: int
    ttl_s: int


def responses(*codes: int, **models: type[BaseModel]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for error codes (ErrorBody unless a model is given)."""
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        out[code] = {"model": models.get(f"e{code}", ErrorBody)}
    return out
