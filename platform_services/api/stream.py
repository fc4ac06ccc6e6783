"""The price stream: ``GET /api/ws/prices?symbols=AAPL,MSFT`` (WebSocket).

How prices reach a client:

1. Whoever fetches a fresh quote from a provider (the worker's ingestion
   cycle, or an API lookup on a cache miss) caches it and, in the same Redis
   round trip, publishes the cache entry on ``prices:updates``
   (``MarketService._cache_outcomes``).
2. Each API process holds **one** subscription to that channel
   (:func:`run_feed`) and hands every quote to its :class:`PriceHub`, which
   puts it in the queue of each connection subscribed to the symbol.
3. Each connection has a bounded queue (:class:`DropOldestQueue`): a slow
   client loses its oldest messages, never slows the hub or the other clients.

Protocol (docs/CONTRACT.md, "Price stream"): the symbols are chosen in the
query string, with the rule of ``/api/stocks/prices`` (1-10 symbols). A bad
list, a foreign ``Origin`` or a full process is refused at the handshake with
an HTTP status and the REST API's JSON error body (422, 403, 503 +
Retry-After). Once accepted, the client gets one ``snapshot`` (cache, else the
last stored price marked stale), then a ``price`` message per new quote and a
``heartbeat`` every ``WS_HEARTBEAT_S``. No provider is called for a snapshot:
a stream costs no quota. Messages from the client are read and ignored.

Blue-green: both colours subscribe to the same channel. When a colour is
stopped (the old one after a switch), uvicorn closes its WebSockets with
1012 (service restart); the client reconnects through nginx, which sends it
to the colour that serves now, and gets a fresh snapshot there.

Like ``/api/stocks/prices`` the stream needs no token: prices are public.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from fastapi import APIRouter, WebSocket
from fastapi.responses import JSONResponse
from redis.asyncio import Redis
from redis.exceptions import RedisError

from platform_services import telemetry
from platform_services.market import PriceEntry
from platform_services.providers import keys
from platform_services.providers.clients import Quote
from platform_services.symbols import SymbolError, parse_symbols

log = logging.getLogger(__name__)
router = APIRouter()

PATH = "/api/ws/prices"
FEED_POLL_S = 5.0
"""Longest wait for one pub/sub message before the loop looks again (and
redis-py pings a silent connection)."""
FEED_BACKOFF_MAX_S = 30.0
CAPACITY_RETRY_AFTER_S = 5
HAND_OFF_CODE = 1012
"""Close code of a stream handed off (service restart): reconnect, nginx
sends the client to what serves now."""

T = TypeVar("T")


# --- pure pieces -----------------------------------------------------------------------------


class DropOldestQueue(Generic[T]):
    """A bounded FIFO for one event loop whose ``put`` never waits: when full,
    the oldest item goes (and is counted in ``dropped``)."""

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        self._items: deque[T] = deque(maxlen=maxsize)
        self._ready = asyncio.Event()
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: T) -> bool:
        """Append ``item``; False when that pushed the oldest item out."""
        full = len(self._items) == self._items.maxlen
        self._items.append(item)  # a full deque(maxlen) drops from the left
        if full:
            self.dropped += 1
        self._ready.set()
        return not full

    async def get(self) -> T:
        """The oldest item, waiting for one (cancel-safe: nothing is lost)."""
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        return self._items.popleft()


def parse_subscription(values: list[str]) -> list[str]:
    """The symbols of ``?symbols=...`` (given once, REST's rule); SymbolError else."""
    if len(values) > 1:
        raise SymbolError("give symbols once, comma-separated")
    return parse_symbols(values[0] if values else None)


def origin_allowed(
    origin: str | None, allowed: Iterable[str], same_origin: str | None = None
) -> bool:
    """A browser page may open the stream only from its own origin (the
    platform's web frontend, served by the same nginx) or from an origin of
    ``CORS_ORIGINS`` (WebSockets bypass CORS); clients without ``Origin``
    (scripts) always may."""
    if origin is None:
        return True
    return origin == same_origin or origin in set(allowed)


def request_origin(headers: Mapping[str, str], ws_scheme: str) -> str | None:
    """The origin the client addressed: ``scheme://host[:port]`` from nginx's
    ``X-Forwarded-Proto`` and ``X-Forwarded-Host`` (the Host header as the
    browser sent it, port included; compose/nginx/conf/websocket.inc), else
    from the request itself. A browser cannot set either header on a
    WebSocket handshake, so a page elsewhere never matches."""
    host = headers.get("x-forwarded-host") or headers.get("host")
    if not host:
        return None
    proto = headers.get("x-forwarded-proto") or ("https" if ws_scheme == "wss" else "http")
    return f"{proto.lower()}://{host.lower()}"


def quote_key(quote: dict[str, Any]) -> tuple[Any, Any, Any]:
    """What makes two messages about one symbol the same: one cache write
    (``published_at``, its ``cached_at``). A quote fetched again is a new
    message even when unchanged (market-sim's quotes change each minute)."""
    return (quote.get("published_at"), quote.get("as_of"), quote.get("price"))


def entry_json(quote: Quote, source: str, stale: bool = False) -> dict[str, Any]:
    """A quote as ``/api/stocks/prices`` shows it (same fields)."""
    return PriceEntry(quote, source, stale).to_json()


def decode_update(raw: str | bytes) -> dict[str, Any] | None:
    """A ``prices:updates`` payload as a stream entry; None when malformed."""
    try:
        data = json.loads(raw)
        quote = Quote.from_json(data)
    except (TypeError, ValueError, KeyError):
        return None
    entry = entry_json(quote, "provider")
    if isinstance(data, dict) and data.get("cached_at"):
        entry["published_at"] = data["cached_at"]
    return entry


# --- the hub ------------------------------------------------------------------------------------


Outgoing = tuple[str, tuple[Any, Any, Any], str]
_HAND_OFF: Outgoing = ("", (None, None, None), "")
"""Queued by :meth:`PriceHub.hand_off` (recognised by identity): close the stream."""
"""(symbol, quote_key, the message's JSON text): encoded once for every subscriber."""


@dataclass(eq=False)
class Subscriber:
    symbols: list[str]
    queue: DropOldestQueue[Outgoing]
    last_sent: dict[str, tuple[Any, Any, Any]] = field(default_factory=dict)

    def is_new(self, symbol: str, key: tuple[Any, Any, Any]) -> bool:
        """False for a cache write this client already has (a snapshot and an
        update that raced it, or a resync after the feed came back)."""
        return self.last_sent.get(symbol) != key


class PriceHub:
    """The connections of one process, by symbol; fan-out never waits on a client."""

    def __init__(self, max_connections: int, queue_size: int) -> None:
        self.max_connections = max_connections
        self.queue_size = queue_size
        self._by_symbol: dict[str, set[Subscriber]] = {}
        self._all: set[Subscriber] = set()

    def __len__(self) -> int:
        return len(self._all)

    def symbols(self) -> list[str]:
        return sorted(self._by_symbol)

    def open(self, symbols: list[str]) -> Subscriber | None:
        """A new subscriber, or None when the process has ``max_connections``."""
        if len(self._all) >= self.max_connections:
            return None
        sub = Subscriber(list(symbols), DropOldestQueue(self.queue_size))
        self._all.add(sub)
        for symbol in sub.symbols:
            self._by_symbol.setdefault(symbol, set()).add(sub)
        telemetry.WS_CONNECTIONS.set(len(self._all))
        return sub

    def close(self, sub: Subscriber) -> None:
        self._all.discard(sub)
        for symbol in sub.symbols:
            subs = self._by_symbol.get(symbol)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._by_symbol[symbol]
        telemetry.WS_CONNECTIONS.set(len(self._all))

    def hand_off(self) -> int:
        """Ask every stream of this process to close with ``HAND_OFF_CODE``,
        so that its client reconnects through nginx to the container that
        serves now: what a deploy asks of a container it drains (a stream is
        a connection that would otherwise never end). How many were asked."""
        for sub in self._all:
            sub.queue.put(_HAND_OFF)
        return len(self._all)

    def offer(self, entry: dict[str, Any]) -> int:
        """Queue ``entry`` for its symbol's subscribers; how many got it."""
        symbol = entry.get("symbol")
        subs = self._by_symbol.get(symbol) if isinstance(symbol, str) else None
        if not subs or not isinstance(symbol, str):
            return 0
        text = json.dumps({"type": "price", "quote": entry})
        item: Outgoing = (symbol, quote_key(entry), text)
        for sub in subs:
            if not sub.queue.put(item):
                telemetry.WS_DROPPED.inc()
        return len(subs)


# --- Redis -----------------------------------------------------------------------------------


async def cached_entries(redis: Redis, symbols: list[str]) -> dict[str, dict[str, Any]]:
    """The cached quotes of ``symbols`` as stream entries (negative entries skipped)."""
    if not symbols:
        return {}
    raw = await redis.mget([keys.price_cache_key(s) for s in symbols])
    found: dict[str, dict[str, Any]] = {}
    for symbol, value in zip(symbols, raw, strict=True):
        if value is None:
            continue
        try:
            data = json.loads(value)
            if data.get("unknown"):
                continue
            found[symbol] = entry_json(Quote.from_json(data), "cache")
            if data.get("cached_at"):
                found[symbol]["published_at"] = data["cached_at"]
        except (TypeError, ValueError, KeyError, AttributeError):
            continue
    return found


async def run_feed(redis: Redis, hub: PriceHub) -> None:
    """Subscribe to ``prices:updates`` and feed the hub, for the process's life.

    Redis down: retried with backoff (1 s, doubling, 30 s at most). Messages
    published while the subscription was down are lost, so each
    (re)subscription re-offers the cached quotes of the symbols clients follow;
    the hub drops those a client already has.
    """
    backoff = 1.0
    while True:
        try:
            async with redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                await pubsub.subscribe(keys.PRICE_UPDATES_CHANNEL)
                telemetry.WS_FEED_UP.set(1)
                backoff = 1.0
                for entry in (await cached_entries(redis, hub.symbols())).values():
                    hub.offer(entry)
                while True:
                    message = await pubsub.get_message(timeout=FEED_POLL_S)
                    if message is None or message.get("type") != "message":
                        continue
                    update = decode_update(message["data"])
                    if update is not None:
                        hub.offer(update)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # RedisError, OSError: the loop must outlive outages
            log.warning(
                "price feed lost, resubscribing",
                extra={"fields": {"error": type(exc).__name__, "retry_s": backoff}},
            )
        finally:
            telemetry.WS_FEED_UP.set(0)
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, FEED_BACKOFF_MAX_S)


# --- the endpoint ------------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(UTC).isoformat()


async def _refuse(
    websocket: WebSocket,
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
) -> None:
    telemetry.WS_REJECTED.labels(code).inc()
    response = JSONResponse({"detail": message, "error": code}, status, headers=headers)
    try:
        await websocket.send_denial_response(response)
    except RuntimeError:  # a server without the denial extension: a plain 403
        await websocket.close(code=1008, reason=message[:120])


async def _send(websocket: WebSocket, kind: str, text: str) -> None:
    await websocket.send_text(text)
    telemetry.WS_MESSAGES.labels(kind).inc()


async def _snapshot(platform: Any, symbols: list[str]) -> dict[str, dict[str, Any]]:
    """Cache first, then the last stored price (stale); never a provider call."""
    entries: dict[str, dict[str, Any]] = {}
    with contextlib.suppress(RedisError, OSError):
        entries = await cached_entries(platform.redis, symbols)
    missing = [s for s in symbols if s not in entries]
    if missing:
        try:
            for quote in await platform.store.latest_quotes(missing):
                entries[quote.symbol] = entry_json(quote, "database", stale=True)
        except Exception as exc:  # the snapshot is partial, the stream still works
            log.warning("stream snapshot without stored prices: %s", type(exc).__name__)
    return entries


async def _read_until_closed(websocket: WebSocket) -> None:
    """Client messages are ignored; this returns when the connection ends
    (the client closed, or the server is shutting down: 1012)."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return


async def _write(websocket: WebSocket, sub: Subscriber, heartbeat_s: float) -> None:
    while True:
        try:
            item = await asyncio.wait_for(sub.queue.get(), heartbeat_s)
        except TimeoutError:
            await _send(
                websocket, "heartbeat", json.dumps({"type": "heartbeat", "timestamp": _now()})
            )
            continue
        if item is _HAND_OFF:
            telemetry.WS_MESSAGES.labels(type="hand-off").inc()
            await websocket.close(code=HAND_OFF_CODE, reason="reconnect: this server stops serving")
            return
        symbol, key, text = item
        if not sub.is_new(symbol, key):
            continue
        sub.last_sent[symbol] = key
        await _send(websocket, "price", text)


@router.websocket(PATH)
async def price_stream(websocket: WebSocket) -> None:
    platform = websocket.app.state.platform
    settings = platform.settings
    try:
        symbols = parse_subscription(websocket.query_params.getlist("symbols"))
    except SymbolError as exc:
        await _refuse(websocket, 422, "invalid_symbols", str(exc))
        return
    if not origin_allowed(
        websocket.headers.get("origin"),
        settings.cors_origin_list(),
        request_origin(websocket.headers, websocket.url.scheme),
    ):
        await _refuse(websocket, 403, "origin_not_allowed", "this Origin may not open the stream")
        return
    hub: PriceHub = platform.hub
    sub = hub.open(symbols)
    if sub is None:
        await _refuse(
            websocket,
            503,
            "too_many_streams",
            f"this server has {hub.max_connections} price streams open; retry later",
            {"Retry-After": str(CAPACITY_RETRY_AFTER_S)},
        )
        return
    tasks: list[asyncio.Task[None]] = []
    try:
        await websocket.accept()
        # Registered before the snapshot is read: an update landing meanwhile
        # waits in the queue (and is skipped if the snapshot already has it).
        entries = await _snapshot(platform, symbols)
        for symbol, entry in entries.items():
            sub.last_sent[symbol] = quote_key(entry)
        snapshot = {
            "type": "snapshot",
            "symbols": symbols,
            "quotes": [entries[s] for s in symbols if s in entries],
            "missing": [s for s in symbols if s not in entries],
            "colour": settings.app_colour,
            "version": settings.app_version,
            "heartbeat_s": settings.ws_heartbeat_s,
            "timestamp": _now(),
        }
        await _send(websocket, "snapshot", json.dumps(snapshot))
        tasks = [
            asyncio.create_task(_read_until_closed(websocket)),
            asyncio.create_task(_write(websocket, sub, settings.ws_heartbeat_s)),
        ]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    except Exception as exc:  # the client went away mid-send: nothing to tell anyone
        log.debug("price stream ended: %s", type(exc).__name__)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        hub.close(sub)
