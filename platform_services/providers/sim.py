"""market-sim: an offline stand-in for Alpha Vantage, Finnhub, Polygon and NewsAPI.

Run: ``python3 -m platform_services.providers.sim`` (port ``SIM_PORT``, 8100).
Standard library only (``http.server``), so it costs a few MiB.

It answers in each provider's real format, under a path prefix per provider
(the platform's ``*_BASE_URL`` point at these prefixes):

* ``/alphavantage/query?function=GLOBAL_QUOTE&symbol=IBM&apikey=K``
* ``/finnhub/api/v1/quote?symbol=AAPL`` (``token=`` or ``X-Finnhub-Token``)
* ``/polygon/v2/aggs/ticker/AAPL/prev`` (``apiKey=`` or ``Authorization: Bearer``)
* ``/newsapi/v2/everything?q=AAPL`` (``apiKey=`` or ``X-Api-Key``)
* ``/healthz``; ``/<provider>/`` answers 200 (the platform's reachability probe).

Any non-empty key is accepted; a missing key gets the provider's real error.
Unknown symbols get each provider's real "not found" shape.

Prices: a fixed universe of ~50 real tickers. Daily closes follow a random
walk whose steps are seeded by (symbol, day), so every process, restart and
test sees the same history; the intraday path is a Brownian bridge from the
previous close to the day's close, sampled each minute.

Like the real free tiers, the simulator enforces the quotas (same fixed
windows as the platform's ledger, ``SIM_ENFORCE_QUOTAS=0`` turns it off) and
answers over-quota calls with each provider's real rate-limit response, so a
ledger bug shows up as refused calls. ``GET /_sim/stats`` reports the calls
it counted per provider and window; ``POST /_sim/fault?provider=P&mode=M``
(``ok``, ``down`` → 503, ``ratelimit``, ``slow`` with ``&seconds=N``) injects
faults for reliability tests. Both are reachable only inside the stack's
network.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import signal
import sys
import threading
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from platform_services.providers import keys

# (symbol, company, approximate price at the anchor date)
UNIVERSE: dict[str, tuple[str, float]] = {
    "AAPL": ("Apple Inc.", 190.0),
    "MSFT": ("Microsoft Corporation", 410.0),
    "GOOGL": ("Alphabet Inc.", 150.0),
    "GOOG": ("Alphabet Inc. Class C", 151.0),
    "AMZN": ("Amazon.com Inc.", 180.0),
    "NVDA": ("NVIDIA Corporation", 120.0),
    "META": ("Meta Platforms Inc.", 480.0),
    "TSLA": ("Tesla Inc.", 200.0),
    "BRK.B": ("Berkshire Hathaway Inc. Class B", 410.0),
    "JPM": ("JPMorgan Chase & Co.", 200.0),
    "V": ("Visa Inc.", 275.0),
    "MA": ("Mastercard Inc.", 460.0),
    "JNJ": ("Johnson & Johnson", 155.0),
    "WMT": ("Walmart Inc.", 65.0),
    "PG": ("Procter & Gamble Co.", 165.0),
    "UNH": ("UnitedHealth Group Inc.", 520.0),
    "HD": ("Home Depot Inc.", 350.0),
    "DIS": ("Walt Disney Co.", 100.0),
    "BAC": ("Bank of America Corp.", 38.0),
    "XOM": ("Exxon Mobil Corp.", 115.0),
    "CVX": ("Chevron Corp.", 155.0),
    "KO": ("Coca-Cola Co.", 62.0),
    "PEP": ("PepsiCo Inc.", 170.0),
    "CSCO": ("Cisco Systems Inc.", 50.0),
    "ORCL": ("Oracle Corp.", 130.0),
    "INTC": ("Intel Corp.", 30.0),
    "AMD": ("Advanced Micro Devices Inc.", 160.0),
    "NFLX": ("Netflix Inc.", 620.0),
    "ADBE": ("Adobe Inc.", 520.0),
    "CRM": ("Salesforce Inc.", 270.0),
    "PFE": ("Pfizer Inc.", 28.0),
    "MRK": ("Merck & Co.", 125.0),
    "ABBV": ("AbbVie Inc.", 170.0),
    "LLY": ("Eli Lilly and Co.", 780.0),
    "TMO": ("Thermo Fisher Scientific Inc.", 570.0),
    "ABT": ("Abbott Laboratories", 110.0),
    "T": ("AT&T Inc.", 18.0),
    "VZ": ("Verizon Communications Inc.", 40.0),
    "COST": ("Costco Wholesale Corp.", 800.0),
    "NKE": ("Nike Inc.", 90.0),
    "MCD": ("McDonald's Corp.", 290.0),
    "IBM": ("International Business Machines Corp.", 185.0),
    "QCOM": ("Qualcomm Inc.", 170.0),
    "TXN": ("Texas Instruments Inc.", 190.0),
    "AVGO": ("Broadcom Inc.", 1400.0),
    "BA": ("Boeing Co.", 180.0),
    "CAT": ("Caterpillar Inc.", 340.0),
    "GS": ("Goldman Sachs Group Inc.", 460.0),
    "MS": ("Morgan Stanley", 95.0),
    "SBUX": ("Starbucks Corp.", 90.0),
    "UBER": ("Uber Technologies Inc.", 70.0),
    "PYPL": ("PayPal Holdings Inc.", 65.0),
    "SPY": ("SPDR S&P 500 ETF Trust", 520.0),
    "QQQ": ("Invesco QQQ Trust", 440.0),
}

ANCHOR = date(2024, 1, 1)
DAILY_VOL = 0.016
MEAN_REVERSION = 0.01
"""Log-prices revert towards the anchor price (Ornstein-Uhlenbeck), so prices
stay plausible (about ±11 %, one sigma) however far the clock is from ANCHOR."""
MINUTES = 1440


def _seed(*parts: object) -> int:
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


class PriceModel:
    """Deterministic prices: daily random walk + intraday Brownian bridge."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._closes: dict[str, list[float]] = {}
        self._paths: dict[tuple[str, int], list[float]] = {}

    def _close(self, symbol: str, day_index: int) -> float:
        """Close of day ``day_index`` (days since ANCHOR; index -1 is the anchor price)."""
        if day_index < 0:
            return UNIVERSE[symbol][1]
        closes = self._closes.setdefault(symbol, [])
        base = UNIVERSE[symbol][1]
        deviation = math.log(closes[-1] / base) if closes else 0.0
        while len(closes) <= day_index:
            rng = random.Random(_seed(symbol, "day", len(closes)))
            deviation = deviation * (1 - MEAN_REVERSION) + rng.gauss(0, DAILY_VOL)
            closes.append(round(base * math.exp(deviation), 4))
        return closes[day_index]

    def _path(self, symbol: str, day_index: int) -> list[float]:
        key = (symbol, day_index)
        path = self._paths.get(key)
        if path is not None:
            return path
        prev_close = self._close(symbol, day_index - 1)
        close = self._close(symbol, day_index)
        rng = random.Random(_seed(symbol, "intraday", day_index))
        open_ = prev_close * math.exp(rng.gauss(0, DAILY_VOL / 4))
        sigma = DAILY_VOL / math.sqrt(MINUTES)
        walk = [0.0]
        for _ in range(MINUTES - 1):
            walk.append(walk[-1] + rng.gauss(0, sigma))
        target = math.log(close / open_)
        end = walk[-1]
        path = [
            round(open_ * math.exp(w - (i / (MINUTES - 1)) * (end - target)), 4)
            for i, w in enumerate(walk)
        ]
        if len(self._paths) > 512:
            self._paths.clear()
        self._paths[key] = path
        return path

    def snapshot(self, symbol: str, now: datetime) -> dict[str, Any]:
        """Today's bar so far and yesterday's full bar."""
        with self._lock:
            today = now.date()
            index = (today - ANCHOR).days
            minute = now.hour * 60 + now.minute
            path = self._path(symbol, index)[: minute + 1]
            prev_path = self._path(symbol, index - 1)
        rng = random.Random(_seed(symbol, "volume", index))
        base_volume = rng.randint(2_000_000, 60_000_000)
        prev_rng = random.Random(_seed(symbol, "volume", index - 1))
        prev_volume = prev_rng.randint(2_000_000, 60_000_000)
        return {
            "price": path[-1],
            "open": path[0],
            "high": max(path),
            "low": min(path),
            "volume": int(base_volume * (minute + 1) / MINUTES),
            "prev_close": prev_path[-1],
            "prev": {
                "o": prev_path[0],
                "h": max(prev_path),
                "l": min(prev_path),
                "c": prev_path[-1],
                "v": prev_volume,
                "vw": round(sum(prev_path) / len(prev_path), 4),
                "n": prev_volume // 90,
                "t": int(
                    datetime.combine(
                        today - timedelta(days=1), datetime.min.time(), UTC
                    ).timestamp()
                    * 1000
                ),
            },
        }


class Quotas:
    """The providers' own quota enforcement, as the real free tiers do it."""

    def __init__(self, enforce: bool) -> None:
        self.enforce = enforce
        self.providers = keys.provider_table()
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, int], int] = {}

    def admit(self, provider: str, now: float) -> bool:
        spec = self.providers[provider]
        wid = keys.window_id(spec.window_seconds, now)
        with self._lock:
            count = self._counts.get((provider, wid), 0) + 1
            self._counts[(provider, wid)] = count
            if len(self._counts) > 10_000:
                self._counts = {k: v for k, v in self._counts.items() if k[1] >= wid - 1}
        return not self.enforce or count <= spec.limit

    def stats(self, now: float) -> dict[str, Any]:
        out: dict[str, Any] = {}
        with self._lock:
            for name, spec in self.providers.items():
                wid = keys.window_id(spec.window_seconds, now)
                out[name] = {
                    "window": spec.window,
                    "window_id": wid,
                    "calls": self._counts.get((name, wid), 0),
                    "limit": spec.limit,
                    "enforced": self.enforce,
                }
        return out


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.modes: dict[str, tuple[str, float]] = {}

    def set(self, provider: str, mode: str, seconds: float) -> None:
        with self._lock:
            if mode == "ok":
                self.modes.pop(provider, None)
            else:
                self.modes[provider] = (mode, seconds)

    def get(self, provider: str) -> tuple[str, float]:
        with self._lock:
            return self.modes.get(provider, ("ok", 0.0))


MODEL = PriceModel()
QUOTAS = Quotas(
    enforce=os.environ.get("SIM_ENFORCE_QUOTAS", "1").lower() not in ("0", "false", "no")
)
FAULTS = Faults()
PREFIXES = {
    "alphavantage": "alpha_vantage",
    "finnhub": "finnhub",
    "polygon": "polygon",
    "newsapi": "newsapi",
}


def _fmt(value: float) -> str:
    return f"{value:.4f}"


def alpha_vantage(symbol: str, now: datetime) -> dict[str, Any]:
    if symbol not in UNIVERSE:
        return {"Global Quote": {}}
    s = MODEL.snapshot(symbol, now)
    change = s["price"] - s["prev_close"]
    return {
        "Global Quote": {
            "01. symbol": symbol,
            "02. open": _fmt(s["open"]),
            "03. high": _fmt(s["high"]),
            "04. low": _fmt(s["low"]),
            "05. price": _fmt(s["price"]),
            "06. volume": str(s["volume"]),
            "07. latest trading day": now.date().isoformat(),
            "08. previous close": _fmt(s["prev_close"]),
            "09. change": _fmt(change),
            "10. change percent": f"{change / s['prev_close'] * 100:.4f}%",
        }
    }


def finnhub(symbol: str, now: datetime) -> dict[str, Any]:
    if symbol not in UNIVERSE:
        return {"c": 0, "d": None, "dp": None, "h": 0, "l": 0, "o": 0, "pc": 0, "t": 0}
    s = MODEL.snapshot(symbol, now)
    change = s["price"] - s["prev_close"]
    return {
        "c": s["price"],
        "d": round(change, 4),
        "dp": round(change / s["prev_close"] * 100, 4),
        "h": s["high"],
        "l": s["low"],
        "o": s["open"],
        "pc": s["prev_close"],
        "t": int(now.replace(second=0, microsecond=0).timestamp()),
    }


def polygon_prev(symbol: str, now: datetime) -> dict[str, Any]:
    request_id = uuid.uuid4().hex
    if symbol not in UNIVERSE:
        return {
            "ticker": symbol,
            "queryCount": 0,
            "resultsCount": 0,
            "adjusted": True,
            "status": "OK",
            "request_id": request_id,
        }
    prev = MODEL.snapshot(symbol, now)["prev"]
    return {
        "ticker": symbol,
        "queryCount": 1,
        "resultsCount": 1,
        "adjusted": True,
        "results": [{"T": symbol, **prev}],
        "status": "OK",
        "request_id": request_id,
        "count": 1,
    }


HEADLINES = (
    "{company} shares move as traders weigh outlook",
    "Analysts revisit {company} price targets after quarterly update",
    "{company} ({symbol}) draws heavy options activity",
    "What {company}'s latest filing says about margins",
    "{company} announces product update; investors react",
    "Is {symbol} still a buy? Three things to watch",
    "{company} executives discuss strategy at industry conference",
)


def newsapi_everything(query: str, page_size: int, now: datetime) -> dict[str, Any]:
    symbol = query.strip().upper()
    company = UNIVERSE.get(symbol, (query, 0.0))[0]
    hour = int(now.timestamp()) // 3600
    rng = random.Random(_seed(query, "news", hour))
    total = rng.randint(3, 12) if symbol in UNIVERSE else rng.randint(0, 2)
    articles = []
    for i in range(min(total, page_size)):
        published = now - timedelta(minutes=rng.randint(5, 60 * 24) + i)
        slug = hashlib.sha1(f"{query}-{hour}-{i}".encode()).hexdigest()[:12]
        title = rng.choice(HEADLINES).format(company=company, symbol=symbol)
        articles.append(
            {
                "source": {
                    "id": None,
                    "name": rng.choice(["Market Wire", "Daily Ledger", "Tickerline"]),
                },
                "author": rng.choice(["Staff", "A. Analyst", None]),
                "title": title,
                "description": f"Simulated coverage of {company} for offline use.",
                "url": f"https://news.example.invalid/{symbol.lower()}/{slug}",
                "urlToImage": None,
                "publishedAt": published.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "content": f"{title}. This article is generated by market-sim.",
            }
        )
    return {"status": "ok", "totalResults": total, "articles": articles}


RATE_LIMITED: dict[str, tuple[int, dict[str, Any]]] = {
    "alpha_vantage": (
        200,
        {
            "Information": "Thank you for using Alpha Vantage! Our standard API rate limit is 25 "
            "requests per day. Please subscribe to any of the premium plans to instantly remove "
            "all daily rate limits."
        },
    ),
    "finnhub": (429, {"error": "API limit reached. Please try again later. Remaining Limit: 0"}),
    "polygon": (
        429,
        {
            "status": "ERROR",
            "request_id": "",
            "error": "You've exceeded the maximum requests per minute, please wait or upgrade "
            "your subscription to continue. https://polygon.io/pricing",
        },
    ),
    "newsapi": (
        429,
        {
            "status": "error",
            "code": "rateLimited",
            "message": "You have made too many requests recently. Developer accounts are limited "
            "to 100 requests over a 24 hour period.",
        },
    ),
}
MISSING_KEY: dict[str, tuple[int, dict[str, Any]]] = {
    "alpha_vantage": (
        200,
        {
            "Error Message": "the parameter apikey is invalid or missing. Please claim your free "
            "API key on (https://www.alphavantage.co/support/#api-key)."
        },
    ),
    "finnhub": (401, {"error": "Please use an API key."}),
    "polygon": (401, {"status": "ERROR", "request_id": "", "error": "API Key was not provided"}),
    "newsapi": (
        401,
        {
            "status": "error",
            "code": "apiKeyMissing",
            "message": "Your API key is missing. Append this to the URL with the apiKey param, "
            "or use the x-api-key HTTP header.",
        },
    ),
}


class Handler(BaseHTTPRequestHandler):
    server_version = "market-sim/1.0"
    sys_version = ""
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: request lines carry API keys in query strings."""

    def _send(self, status: int, body: Any, content_type: str = "application/json") -> None:
        data = json.dumps(body).encode() if content_type == "application/json" else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(min(length, 65536))
        if url.path == "/_sim/fault":
            provider = query.get("provider", "")
            mode = query.get("mode", "ok")
            if provider not in QUOTAS.providers or mode not in ("ok", "down", "ratelimit", "slow"):
                self._send(400, {"error": "provider and mode (ok|down|ratelimit|slow) required"})
                return
            FAULTS.set(provider, mode, float(query.get("seconds", "5")))
            self._send(200, {"provider": provider, "mode": mode})
            return
        self._send(404, {"error": "not found"})

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        parts = [p for p in url.path.split("/") if p]
        now = datetime.now(UTC)
        if url.path == "/healthz":
            self._send(200, {"status": "ok", "symbols": len(UNIVERSE)})
            return
        if url.path == "/_sim/stats":
            self._send(
                200,
                {
                    "quotas": QUOTAS.stats(now.timestamp()),
                    "faults": {p: m for p, (m, _) in FAULTS.modes.items()},
                },
            )
            return
        if url.path == "/_sim/symbols":
            self._send(200, {"symbols": sorted(UNIVERSE)})
            return
        if not parts or parts[0] not in PREFIXES:
            self._send(404, {"error": "unknown path"})
            return
        provider = PREFIXES[parts[0]]
        rest = parts[1:]
        mode, seconds = FAULTS.get(provider)
        if mode == "down":
            self._send(503, b"Service Unavailable", "text/plain")
            return
        if mode == "slow":
            time.sleep(min(seconds, 60))
        if not rest:
            self._send(200, {"provider": provider, "status": "ok"})
            return
        route = self._route(provider, rest, query, now)
        if route is None:
            self._send(404, {"error": "unknown endpoint"})
            return
        if not self._key(provider, query):
            status, body = MISSING_KEY[provider]
            self._send(status, body)
            return
        if mode == "ratelimit" or not QUOTAS.admit(provider, now.timestamp()):
            status, body = RATE_LIMITED[provider]
            self._send(status, body)
            return
        status, body = route()
        self._send(status, body)

    def _key(self, provider: str, query: dict[str, str]) -> bool:
        h = self.headers
        if provider == "alpha_vantage":
            return bool(query.get("apikey"))
        if provider == "finnhub":
            return bool(query.get("token") or h.get("X-Finnhub-Token"))
        if provider == "polygon":
            auth = h.get("Authorization", "")
            return bool(query.get("apiKey") or (auth.startswith("Bearer ") and auth[7:].strip()))
        return bool(query.get("apiKey") or h.get("X-Api-Key"))

    def _route(self, provider: str, rest: list[str], query: dict[str, str], now: datetime) -> Any:
        if provider == "alpha_vantage" and rest == ["query"]:
            function = query.get("function", "")
            symbol = query.get("symbol", "")
            if function != "GLOBAL_QUOTE":
                return lambda: (
                    200,
                    {"Error Message": f"This API function ({function}) does not exist."},
                )
            return lambda: (200, alpha_vantage(symbol.upper(), now))
        if provider == "finnhub" and rest == ["api", "v1", "quote"]:
            symbol = query.get("symbol", "")
            if not symbol:
                return lambda: (422, {"error": "Symbol is required."})
            return lambda: (200, finnhub(symbol, now))
        if provider == "polygon" and len(rest) == 5 and rest[:3] == ["v2", "aggs", "ticker"]:
            if rest[4] == "prev":
                return lambda: (200, polygon_prev(rest[3], now))
        if provider == "newsapi" and rest == ["v2", "everything"]:
            q = query.get("q", "")
            if not q:
                return lambda: (
                    400,
                    {
                        "status": "error",
                        "code": "parametersMissing",
                        "message": "Required parameters are missing, the scope of your search is "
                        "too broad. Please set any of the following required parameters and try "
                        "again: q, qInTitle, sources, domains.",
                    },
                )
            try:
                page_size = max(1, min(100, int(query.get("pageSize", "20"))))
            except ValueError:
                page_size = 20
            return lambda: (200, newsapi_everything(q, page_size, now))
        return None


def main() -> int:
    host = os.environ.get("SIM_HOST", "0.0.0.0")
    port = int(os.environ.get("SIM_PORT", "8100"))
    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True

    def stop(_signum: int, _frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(
        json.dumps(
            {
                "msg": "market-sim listening",
                "port": port,
                "symbols": len(UNIVERSE),
                "enforce_quotas": QUOTAS.enforce,
            }
        ),
        flush=True,
    )
    server.serve_forever()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
