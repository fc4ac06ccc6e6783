"""httpx clients for the market-data providers, and parsers of their formats.

Each provider answers in its own format; the parsers below turn a response
(status code + decoded JSON) into a :class:`Quote` (or articles for NewsAPI),
or raise one of the :class:`ProviderError` subclasses. The parsers are pure
functions so they are unit-tested against recorded payloads of the real APIs:

* Alpha Vantage ``GET /query?function=GLOBAL_QUOTE&symbol=IBM&apikey=...``:
  ``{"Global Quote": {"01. symbol": "IBM", "05. price": "187.4300", ...}}``;
  an unknown symbol gives ``{"Global Quote": {}}``; limits are reported with a
  200 and ``{"Note": ...}`` or ``{"Information": ...}``.
* Finnhub ``GET /api/v1/quote?symbol=AAPL`` (token in ``X-Finnhub-Token``):
  ``{"c": 261.74, "d": 0.42, "dp": 0.16, "h": ..., "l": ..., "o": ..., "pc": ..., "t": 1700000000}``;
  an unknown symbol gives zeros (``"c": 0, "t": 0``, ``"d": null``).
* Polygon ``GET /v2/aggs/ticker/AAPL/prev`` (key as bearer token):
  ``{"ticker": "AAPL", "resultsCount": 1, "results": [{"o":..,"h":..,"l":..,"c":..,"v":..,"t": ms}], "status": "OK"}``;
  an unknown ticker gives ``"resultsCount": 0`` and no ``results``.
* NewsAPI ``GET /v2/everything?q=AAPL`` (key in ``X-Api-Key``):
  ``{"status": "ok", "totalResults": n, "articles": [...]}`` or
  ``{"status": "error", "code": "rateLimited", "message": ...}``.

API keys travel in headers wherever the provider allows it (everything but
Alpha Vantage), so they do not end up in URLs, and errors are reported
without them.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from typing import Any

import httpx

from platform_services.settings import Settings


@dataclass(frozen=True)
class Quote:
    symbol: str
    price: float
    provider: str
    as_of: datetime
    """The provider's timestamp of the quote (UTC)."""
    open: float | None = None
    high: float | None = None
    low: float | None = None
    previous_close: float | None = None
    change: float | None = None
    change_percent: float | None = None
    volume: int | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["as_of"] = self.as_of.isoformat()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Quote:
        values = dict(data)
        values["as_of"] = datetime.fromisoformat(values["as_of"])
        fields = cls.__dataclass_fields__
        return cls(**{k: v for k, v in values.items() if k in fields})


@dataclass(frozen=True)
class Article:
    title: str
    url: str
    source: str | None
    published_at: datetime
    description: str | None = None


class ProviderError(Exception):
    """A provider did not give a usable answer."""

    outcome = "error"

    def __init__(self, provider: str, message: str) -> None:
        super().__init__(f"{provider}: {message}")
        self.provider = provider
        self.message = message


class SymbolNotFound(ProviderError):
    """The provider answered and does not know the symbol."""

    outcome = "not_found"


class ProviderRateLimited(ProviderError):
    """The provider refused the call for its own rate limit."""

    outcome = "rate_limited"


class ProviderAuthError(ProviderError):
    """The key was refused."""

    outcome = "auth_error"


class ProviderUnavailable(ProviderError):
    """Network error, timeout, 5xx or a payload we cannot read."""

    outcome = "unavailable"


# --- parsers (pure) -------------------------------------------------------------


def _num(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = value.strip().rstrip("%")
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _int(value: Any) -> int | None:
    number = _num(value)
    return None if number is None else int(number)


def _require_dict(provider: str, payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise ProviderUnavailable(provider, "unexpected payload (not a JSON object)")
    return payload


def _http_error(provider: str, status: int, message: str) -> ProviderError:
    if status == 429:
        return ProviderRateLimited(provider, message or "rate limited (429)")
    if status in (401, 403):
        return ProviderAuthError(provider, message or f"key refused ({status})")
    if status == 404:
        return SymbolNotFound(provider, message or "not found (404)")
    return ProviderUnavailable(provider, message or f"HTTP {status}")


def parse_alpha_vantage_quote(symbol: str, status: int, payload: Any) -> Quote:
    provider = "alpha_vantage"
    if status != 200:
        raise _http_error(provider, status, "")
    data = _require_dict(provider, payload)
    for key in ("Note", "Information"):
        if key in data:
            text = str(data[key])
            lowered = text.lower()
            if any(w in lowered for w in ("rate limit", "call frequency", "requests per day")):
                raise ProviderRateLimited(provider, "rate limit reached")
            if "api key" in lowered or "apikey" in lowered:
                raise ProviderAuthError(provider, "key refused")
            raise ProviderUnavailable(provider, "informational answer instead of a quote")
    if "Error Message" in data:
        text = str(data["Error Message"]).lower()
        if "apikey" in text or "api key" in text:
            raise ProviderAuthError(provider, "key refused")
        raise SymbolNotFound(provider, "invalid API call")
    quote = data.get("Global Quote")
    if not isinstance(quote, dict):
        raise ProviderUnavailable(provider, "no 'Global Quote' in the answer")
    if not quote:
        raise SymbolNotFound(provider, f"unknown symbol {symbol}")
    price = _num(quote.get("05. price"))
    if price is None or price <= 0:
        raise ProviderUnavailable(provider, "quote without a price")
    day = quote.get("07. latest trading day")
    try:
        as_of = datetime.combine(date.fromisoformat(str(day)), datetime.min.time(), UTC)
    except ValueError:
        as_of = datetime.now(UTC)
    return Quote(
        symbol=str(quote.get("01. symbol") or symbol),
        price=price,
        provider=provider,
        as_of=as_of,
        open=_num(quote.get("02. open")),
        high=_num(quote.get("03. high")),
        low=_num(quote.get("04. low")),
        volume=_int(quote.get("06. volume")),
        previous_close=_num(quote.get("08. previous close")),
        change=_num(quote.get("09. change")),
        change_percent=_num(quote.get("10. change percent")),
    )


def parse_finnhub_quote(symbol: str, status: int, payload: Any) -> Quote:
    provider = "finnhub"
    if status != 200:
        message = payload.get("error", "") if isinstance(payload, dict) else ""
        raise _http_error(provider, status, str(message))
    data = _require_dict(provider, payload)
    if "error" in data:
        raise ProviderUnavailable(provider, str(data["error"]))
    price = _num(data.get("c"))
    ts = _int(data.get("t")) or 0
    if not price or ts == 0:
        # Finnhub's answer for a symbol it does not know: all zeros, nulls.
        raise SymbolNotFound(provider, f"unknown symbol {symbol}")
    return Quote(
        symbol=symbol,
        price=price,
        provider=provider,
        as_of=datetime.fromtimestamp(ts, UTC),
        open=_num(data.get("o")),
        high=_num(data.get("h")),
        low=_num(data.get("l")),
        previous_close=_num(data.get("pc")),
        change=_num(data.get("d")),
        change_percent=_num(data.get("dp")),
    )


def parse_polygon_prev(symbol: str, status: int, payload: Any) -> Quote:
    provider = "polygon"
    if status != 200:
        message = (
            payload.get("error") or payload.get("message") if isinstance(payload, dict) else ""
        )
        raise _http_error(provider, status, str(message or ""))
    data = _require_dict(provider, payload)
    if str(data.get("status", "")).upper() == "ERROR":
        raise ProviderUnavailable(provider, str(data.get("error") or "error status"))
    results = data.get("results") or []
    if not results or not data.get("resultsCount", len(results)):
        raise SymbolNotFound(provider, f"unknown symbol {symbol}")
    bar = results[0]
    if not isinstance(bar, dict):
        raise ProviderUnavailable(provider, "unexpected result row")
    close = _num(bar.get("c"))
    if close is None or close <= 0:
        raise ProviderUnavailable(provider, "bar without a close")
    open_ = _num(bar.get("o"))
    ts_ms = _int(bar.get("t"))
    as_of = datetime.fromtimestamp(ts_ms / 1000, UTC) if ts_ms else datetime.now(UTC)
    change = None if open_ is None else round(close - open_, 6)
    change_pct = None if not open_ or change is None else round(change / open_ * 100, 6)
    return Quote(
        symbol=str(data.get("ticker") or symbol),
        price=close,
        provider=provider,
        as_of=as_of,
        open=open_,
        high=_num(bar.get("h")),
        low=_num(bar.get("l")),
        volume=_int(bar.get("v")),
        change=change,
        change_percent=change_pct,
    )


def parse_newsapi_everything(status: int, payload: Any) -> list[Article]:
    provider = "newsapi"
    data = payload if isinstance(payload, dict) else {}
    if status != 200 or data.get("status") == "error":
        code = str(data.get("code", ""))
        if status == 429 or code == "rateLimited":
            raise ProviderRateLimited(provider, "rate limit reached")
        if status == 401 or code.startswith("apiKey"):
            raise ProviderAuthError(provider, "key refused")
        raise ProviderUnavailable(provider, code or f"HTTP {status}")
    articles = data.get("articles")
    if not isinstance(articles, list):
        raise ProviderUnavailable(provider, "no 'articles' in the answer")
    out: list[Article] = []
    for item in articles:
        if not isinstance(item, dict) or not item.get("title") or not item.get("url"):
            continue
        try:
            published = datetime.fromisoformat(str(item.get("publishedAt")).replace("Z", "+00:00"))
        except ValueError:
            continue
        if published.tzinfo is None:
            published = published.replace(tzinfo=UTC)
        source = item.get("source")
        out.append(
            Article(
                title=str(item["title"])[:500],
                url=str(item["url"])[:2000],
                source=str(source.get("name")) if isinstance(source, dict) else None,
                published_at=published,
                description=(str(item["description"])[:2000] if item.get("description") else None),
            )
        )
    return out


# --- clients ----------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    reachable: bool
    latency_ms: float | None
    error: str | None = None


def _describe(exc: BaseException) -> str:
    """A short, key-free description of a transport error."""
    name = type(exc).__name__
    text = str(exc).split("\n", 1)[0][:120]
    return f"{name}: {text}" if text else name


class ProviderClient:
    """Base of the four clients: one shared httpx.AsyncClient, a base URL, a key."""

    name = ""

    def __init__(self, http: httpx.AsyncClient, base_url: str, api_key: str) -> None:
        self._http = http
        self.base_url = base_url.rstrip("/")
        self._key = api_key

    def _scrub(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text

    async def _get(
        self, path: str, params: dict[str, str], headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        try:
            response = await self._http.get(self.base_url + path, params=params, headers=headers)
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(self.name, self._scrub(_describe(exc))) from None
        try:
            payload = response.json()
        except ValueError:
            if response.status_code >= 400:
                raise _http_error(self.name, response.status_code, "") from None
            raise ProviderUnavailable(self.name, "answer is not JSON") from None
        return response.status_code, payload

    async def probe(self) -> Probe:
        """Is the provider reachable? Costs no quota: it asks the base URL only."""
        started = time.perf_counter()
        try:
            response = await self._http.get(self.base_url + "/", timeout=3.0)
        except httpx.HTTPError as exc:
            return Probe(False, None, self._scrub(_describe(exc)))
        latency = round((time.perf_counter() - started) * 1000, 1)
        if response.status_code >= 500:
            return Probe(False, latency, f"HTTP {response.status_code}")
        return Probe(True, latency)


class QuoteClient(ProviderClient):
    async def quote(self, symbol: str) -> Quote:
        raise NotImplementedError


class AlphaVantageClient(QuoteClient):
    name = "alpha_vantage"

    async def quote(self, symbol: str) -> Quote:
        status, payload = await self._get(
            "/query", {"function": "GLOBAL_QUOTE", "symbol": symbol, "apikey": self._key}
        )
        return parse_alpha_vantage_quote(symbol, status, payload)


class FinnhubClient(QuoteClient):
    name = "finnhub"

    async def quote(self, symbol: str) -> Quote:
        status, payload = await self._get(
            "/api/v1/quote", {"symbol": symbol}, {"X-Finnhub-Token": self._key}
        )
        return parse_finnhub_quote(symbol, status, payload)


class PolygonClient(QuoteClient):
    name = "polygon"

    async def quote(self, symbol: str) -> Quote:
        status, payload = await self._get(
            f"/v2/aggs/ticker/{symbol}/prev",
            {"adjusted": "true"},
            {"Authorization": f"Bearer {self._key}"},
        )
        return parse_polygon_prev(symbol, status, payload)


class NewsApiClient(ProviderClient):
    name = "newsapi"

    async def everything(self, query: str, page_size: int = 10) -> list[Article]:
        status, payload = await self._get(
            "/v2/everything",
            {"q": query, "pageSize": str(page_size), "sortBy": "publishedAt", "language": "en"},
            {"X-Api-Key": self._key},
        )
        return parse_newsapi_everything(status, payload)


def build_clients(settings: Settings, http: httpx.AsyncClient) -> dict[str, ProviderClient]:
    """All four clients, keyed by ledger name."""
    return {
        "alpha_vantage": AlphaVantageClient(
            http, settings.alpha_vantage_base_url, settings.alpha_vantage_api_key.get_secret_value()
        ),
        "finnhub": FinnhubClient(
            http, settings.finnhub_base_url, settings.finnhub_api_key.get_secret_value()
        ),
        "polygon": PolygonClient(
            http, settings.polygon_base_url, settings.polygon_api_key.get_secret_value()
        ),
        "newsapi": NewsApiClient(
            http, settings.newsapi_base_url, settings.newsapi_key.get_secret_value()
        ),
    }


def new_http_client(settings: Settings) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.provider_timeout_s, connect=2.0),
        limits=httpx.Limits(max_connections=20, max_keepalive_connections=10),
        headers={"User-Agent": f"investment-platform/{settings.app_version}"},
        follow_redirects=False,
    )
