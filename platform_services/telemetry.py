"""Prometheus metrics and JSON logging shared by the API and the worker."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

import prometheus_client
from prometheus_client import Counter, Gauge, Histogram

# No `*_created` series: they double the scrape size and nothing here uses them.
if hasattr(prometheus_client, "disable_created_metrics"):
    prometheus_client.disable_created_metrics()

REQUEST_DURATION = Histogram(
    "http_request_duration_seconds",
    "HTTP request duration in seconds, by method, route template and status.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0),
)
DAILY_COST_PROJECTION = Gauge(
    "investment_daily_cost_projection",
    "Projected cost of the current UTC day in USD (alert above 1.67).",
)
MONTH_END_PROJECTION = Gauge(
    "investment_month_end_cost_projection", "Projected cost of the current month in USD."
)
PROVIDER_CALLS = Counter(
    "investment_provider_calls_total",
    "Outbound market-data provider calls, by provider and outcome.",
    ["provider", "outcome"],
)
QUOTA_DENIED = Counter(
    "investment_provider_quota_denied_total",
    "Provider calls not made because the quota ledger refused them.",
    ["provider", "reason"],
)
QUOTA_USED = Gauge(
    "investment_provider_quota_used",
    "Calls counted in the provider's current quota window.",
    ["provider"],
)
QUOTA_LIMIT = Gauge("investment_provider_quota_limit", "Provider quota per window.", ["provider"])
EMERGENCY_RATE_LIMIT = Gauge(
    "investment_emergency_rate_limit",
    "1 while the emergency_rate_limit switch is on (no provider call is made).",
)
CACHE_HITS = Counter("investment_cache_hits_total", "Price lookups served from the Redis cache.")
CACHE_MISSES = Counter("investment_cache_misses_total", "Price lookups the cache could not serve.")
LOGIN_ATTEMPTS = Counter("investment_login_attempts_total", "Login attempts by result.", ["result"])
WS_CONNECTIONS = Gauge(
    "investment_ws_connections", "Open price-stream WebSockets (/api/ws/prices) in this process."
)
WS_MESSAGES = Counter(
    "investment_ws_messages_total",
    "Messages sent on the price stream, by type (snapshot, price, heartbeat, hand-off).",
    ["type"],
)
WS_DROPPED = Counter(
    "investment_ws_dropped_total",
    "Price-stream messages dropped (oldest first) because a client's queue was full.",
)
WS_REJECTED = Counter(
    "investment_ws_rejected_total",
    "Price-stream handshakes refused, by reason (symbols, origin, capacity).",
    ["reason"],
)
WS_FEED_UP = Gauge(
    "investment_ws_feed_up",
    "1 while this process is subscribed to the prices:updates channel in Redis.",
)


class JsonFormatter(logging.Formatter):
    """One JSON object per line; ``extra={"fields": {...}}`` adds fields."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            data.update(fields)
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs full request URLs at INFO, and Alpha Vantage takes its key in
    # the query string: keep those lines out of the logs.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
