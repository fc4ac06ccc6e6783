"""The price stream's pure pieces: subscription parsing, the Origin rule, the
drop-oldest queue, the hub's fan-out and capacity, the feed's decoding."""

from __future__ import annotations

import asyncio
import json

import pytest

from platform_services.api.stream import (
    HAND_OFF_CODE,
    DropOldestQueue,
    PriceHub,
    _write,
    decode_update,
    origin_allowed,
    parse_subscription,
    quote_key,
    request_origin,
)
from platform_services.symbols import SymbolError


def quote(symbol: str, price: float, as_of: str = "2026-12-07T10:00:00+00:00") -> dict[str, object]:
    return {"symbol": symbol, "price": price, "provider": "finnhub", "as_of": as_of}


# --- subscription -------------------------------------------------------------------------


def test_subscription_takes_the_rest_rule() -> None:
    assert parse_subscription(["AAPL,MSFT,AAPL"]) == ["AAPL", "MSFT"]


@pytest.mark.parametrize(
    "values",
    [[], [""], ["aapl"], ["AAPL,"], ["AAPL", "MSFT"], [",".join(f"S{i}" for i in range(11))]],
)
def test_bad_subscriptions_are_refused(values: list[str]) -> None:
    with pytest.raises(SymbolError):
        parse_subscription(values)


def test_origin_rule() -> None:
    assert origin_allowed(None, [])  # a script, no Origin
    assert not origin_allowed("http://evil.example", [])
    assert origin_allowed("https://app.example", ["https://app.example"])
    assert not origin_allowed("https://app.example.evil", ["https://app.example"])


def test_same_origin_pages_may_open_the_stream() -> None:
    """The web frontend's page: its Origin is the host the browser addressed
    (nginx's X-Forwarded-Host/-Proto, port included), not in CORS_ORIGINS."""
    via_nginx = {
        "host": "127.0.0.1",
        "x-forwarded-host": "127.0.0.1:18350",
        "x-forwarded-proto": "http",
    }
    same = request_origin(via_nginx, "ws")
    assert same == "http://127.0.0.1:18350"
    assert origin_allowed("http://127.0.0.1:18350", [], same)
    assert not origin_allowed("http://127.0.0.1:18351", [], same)  # another port
    assert not origin_allowed("https://127.0.0.1:18350", [], same)  # another scheme
    assert not origin_allowed("http://evil.example", [], same)
    tls = {"host": "app.example", "x-forwarded-host": "App.Example", "x-forwarded-proto": "https"}
    assert origin_allowed("https://app.example", [], request_origin(tls, "ws"))
    # Straight to a backend (no nginx): the Host header and the socket's scheme.
    assert request_origin({"host": "backend_blue:8000"}, "ws") == "http://backend_blue:8000"
    assert request_origin({"host": "b:8000"}, "wss") == "https://b:8000"
    assert request_origin({}, "ws") is None
    assert not origin_allowed("http://x", [], None)


# --- the bounded queue ----------------------------------------------------------------------


async def test_queue_drops_the_oldest_when_full() -> None:
    q: DropOldestQueue[int] = DropOldestQueue(3)
    assert [q.put(i) for i in range(5)] == [True, True, True, False, False]
    assert len(q) == 3
    assert q.dropped == 2
    assert [await q.get() for _ in range(3)] == [2, 3, 4]


async def test_queue_get_waits_for_a_put() -> None:
    q: DropOldestQueue[str] = DropOldestQueue(2)
    getter = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    assert not getter.done()
    q.put("x")
    assert await asyncio.wait_for(getter, 1) == "x"


async def test_a_cancelled_get_loses_nothing() -> None:
    q: DropOldestQueue[str] = DropOldestQueue(2)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(q.get(), 0.01)
    q.put("kept")
    assert await asyncio.wait_for(q.get(), 1) == "kept"


def test_queue_needs_room() -> None:
    with pytest.raises(ValueError):
        DropOldestQueue(0)


# --- the hub -----------------------------------------------------------------------------


def test_hub_sends_a_quote_to_its_symbols_subscribers_only() -> None:
    hub = PriceHub(max_connections=10, queue_size=4)
    a = hub.open(["AAPL", "MSFT"])
    b = hub.open(["MSFT"])
    assert a is not None and b is not None
    assert hub.offer(quote("AAPL", 1.0)) == 1
    assert hub.offer(quote("MSFT", 2.0)) == 2
    assert hub.offer(quote("NVDA", 3.0)) == 0
    assert (len(a.queue), len(b.queue)) == (2, 1)
    symbol, key, text = a.queue._items[0]
    assert symbol == "AAPL" and key == quote_key(quote("AAPL", 1.0))
    assert json.loads(text) == {"type": "price", "quote": quote("AAPL", 1.0)}


def test_hub_refuses_past_its_capacity_and_frees_on_close() -> None:
    hub = PriceHub(max_connections=2, queue_size=4)
    first = hub.open(["AAPL"])
    assert first is not None and hub.open(["AAPL"]) is not None
    assert hub.open(["AAPL"]) is None
    hub.close(first)
    assert len(hub) == 1
    assert hub.open(["AAPL"]) is not None


def test_closed_subscribers_get_nothing_and_symbols_are_forgotten() -> None:
    hub = PriceHub(max_connections=5, queue_size=4)
    sub = hub.open(["AAPL"])
    assert sub is not None
    hub.close(sub)
    assert hub.symbols() == []
    assert hub.offer(quote("AAPL", 1.0)) == 0
    assert len(sub.queue) == 0


def test_a_slow_subscriber_loses_its_oldest_prices_not_the_others() -> None:
    hub = PriceHub(max_connections=5, queue_size=2)
    slow = hub.open(["AAPL"])
    assert slow is not None
    for i in range(5):
        hub.offer(quote("AAPL", 100.0 + i, as_of=f"2026-12-07T10:0{i}:00+00:00"))
    assert slow.queue.dropped == 3
    assert [json.loads(t)["quote"]["price"] for _, _, t in slow.queue._items] == [103.0, 104.0]


class FakeSocket:
    """What ``_write`` uses of a WebSocket: send_text and close."""

    def __init__(self) -> None:
        self.sent: list[dict[str, object]] = []
        self.closed: tuple[int, str] | None = None

    async def send_text(self, text: str) -> None:
        self.sent.append(json.loads(text))

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed = (code, reason)


async def test_a_hand_off_closes_every_stream_with_1012_after_what_was_queued() -> None:
    """Even a full queue takes the hand-off (the oldest price makes room):
    the prices before it are sent, then the stream closes with 1012."""
    hub = PriceHub(max_connections=5, queue_size=2)
    full, idle = hub.open(["AAPL"]), hub.open(["MSFT"])
    assert full is not None and idle is not None
    for i in range(3):
        hub.offer(quote("AAPL", 100.0 + i, as_of=f"2026-12-07T10:0{i}:00+00:00"))
    assert hub.hand_off() == 2
    for sub in (full, idle):
        socket = FakeSocket()
        await asyncio.wait_for(_write(socket, sub, heartbeat_s=5), 2)  # type: ignore[arg-type]
        assert socket.closed is not None and socket.closed[0] == HAND_OFF_CODE == 1012
        prices = [m["quote"]["price"] for m in socket.sent if m["type"] == "price"]  # type: ignore[index]
        assert prices == ([102.0] if sub is full else [])


def test_a_cache_write_the_client_has_is_not_new_a_refetch_is() -> None:
    hub = PriceHub(max_connections=5, queue_size=4)
    sub = hub.open(["AAPL"])
    assert sub is not None
    first = quote("AAPL", 1.0) | {"published_at": "2026-12-07T10:00:01+00:00"}
    sub.last_sent["AAPL"] = quote_key(first)
    assert not sub.is_new("AAPL", quote_key(dict(first)))
    assert sub.is_new("AAPL", quote_key(quote("AAPL", 1.5)))
    # the same quote fetched again (same minute, same price): a new ingest
    again = first | {"published_at": "2026-12-07T10:00:31+00:00"}
    assert sub.is_new("AAPL", quote_key(again))


# --- the feed -----------------------------------------------------------------------------


def test_decode_update_reads_a_cache_entry() -> None:
    raw = json.dumps(quote("AAPL", 1.25) | {"cached_at": "2026-12-07T10:00:01+00:00"})
    entry = decode_update(raw)
    assert entry is not None
    assert entry["symbol"] == "AAPL" and entry["price"] == 1.25
    assert entry["source"] == "provider" and entry["stale"] is False
    assert entry["published_at"] == "2026-12-07T10:00:01+00:00"


@pytest.mark.parametrize("raw", ["not json", "[]", json.dumps({"unknown": True}), b"\xff"])
def test_decode_update_skips_what_is_not_a_quote(raw: str | bytes) -> None:
    assert decode_update(raw) is None
