"""The streaming primitive of the Docker sources (``sources/docker/stream.py``):
one thread reading a blocking stream, closed from outside at once.

The streams here read a real socket pair (what a docker stream is underneath:
a socket the engine writes to); closing shuts the socket down, as docker-py's
``CancellableStream.close`` does. The last tests point the real sources at a
Docker socket that does not exist: the daemon is away.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from console.core.config import Settings
from console.core.errors import SourceError
from console.core.sources.docker.stream import StreamThread, stream_items

DEADLINE = 10.0


class SocketStream:
    """Lines the peer writes to a socket; ``close()`` shuts the socket down."""

    def __init__(self) -> None:
        self.sock, self.peer = socket.socketpair()
        self.closed = threading.Event()

    def __iter__(self) -> Iterator[str]:
        with self.sock.makefile("rb") as fh:
            for line in fh:
                yield line.decode().rstrip("\n")

    def close(self) -> None:
        self.closed.set()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    def send(self, *lines: str) -> None:
        self.peer.sendall("".join(f"{line}\n" for line in lines).encode())

    def hang_up(self) -> None:
        self.peer.close()


def wait_for(check: Callable[[], bool]) -> None:
    end = time.monotonic() + DEADLINE
    while not check():
        assert time.monotonic() < end, "condition not met in time"
        time.sleep(0.01)


class Collector:
    def __init__(self) -> None:
        self.items: list[str] = []
        self.ends: list[BaseException | None] = []

    def thread(self, stream: Any, **kw: Any) -> StreamThread[str]:
        return StreamThread(
            lambda: stream, self.items.append, name="stackdeck-test", on_end=self.ends.append, **kw
        )


def test_items_in_order_then_the_engine_closes_the_stream() -> None:
    stream, got = SocketStream(), Collector()
    reader = got.thread(stream).start()
    assert reader.settled.wait(DEADLINE) and reader.connected.is_set()
    stream.send("one", "two")
    wait_for(lambda: got.items == ["one", "two"])
    stream.hang_up()
    reader.join(DEADLINE)
    assert not reader.alive
    assert (got.ends, reader.error, reader.stopped) == ([None], None, False)


def test_close_unblocks_a_thread_waiting_for_data() -> None:
    stream, got = SocketStream(), Collector()
    reader = got.thread(stream).start()
    stream.send("one")
    wait_for(lambda: got.items == ["one"])  # now blocked in a read that nothing will end
    reader.close()
    reader.join(DEADLINE)
    assert not reader.alive
    assert stream.closed.is_set()
    # ended by us: not an error, no end reported
    assert (got.ends, reader.error, reader.stopped) == ([], None, True)
    reader.close()  # idempotent


def test_a_stream_that_cannot_be_opened_reports_why() -> None:
    got = Collector()
    refused = ConnectionRefusedError("engine away")

    def open_stream() -> Any:
        raise refused

    reader = StreamThread(
        open_stream, got.items.append, name="stackdeck-test", on_end=got.ends.append
    )
    reader.start()
    assert reader.settled.wait(DEADLINE)
    reader.join(DEADLINE)
    assert not reader.connected.is_set()
    assert reader.error is refused and got.ends == [refused]


def test_closed_while_connecting_the_thread_closes_the_stream_itself() -> None:
    stream, got = SocketStream(), Collector()
    answer = threading.Event()

    def slow_open() -> SocketStream:
        answer.wait(DEADLINE)  # the engine has not answered yet
        return stream

    reader = StreamThread(
        slow_open, got.items.append, name="stackdeck-test", on_end=got.ends.append
    )
    reader.start()
    reader.close()
    stream.send("never read")
    answer.set()
    reader.join(DEADLINE)
    assert not reader.alive
    assert stream.closed.is_set()
    assert (got.items, got.ends, reader.connected.is_set()) == ([], [], False)


def test_an_item_handler_that_fails_ends_the_stream_with_its_error() -> None:
    stream, ends = SocketStream(), []
    boom = ValueError("bad sample")

    def on_item(_item: str) -> None:
        raise boom

    reader = StreamThread(lambda: stream, on_item, name="stackdeck-test", on_end=ends.append)
    reader.start()
    stream.send("x")
    reader.join(DEADLINE)
    assert reader.error is boom and ends == [boom]


# --- on the event loop ------------------------------------------------------------------


async def test_stream_items_end_with_the_stream_and_raise_its_errors() -> None:
    stream = SocketStream()
    stream.send("a", "b")
    stream.hang_up()
    assert [item async for item in stream_items(lambda: stream, name="stackdeck-t", maxsize=4)] == [
        "a",
        "b",
    ]

    def refused() -> Any:
        raise ConnectionRefusedError("engine away")

    with pytest.raises(SourceError, match="logs: engine away"):
        async for _ in stream_items(
            refused,
            name="stackdeck-t",
            maxsize=4,
            wrap_error=lambda exc: SourceError("logs", str(exc)),
        ):
            pass


async def test_the_consumer_leaving_closes_the_stream() -> None:
    stream = SocketStream()
    stream.send("first")
    items = stream_items(lambda: stream, name="stackdeck-leave", maxsize=4)
    async with contextlib.aclosing(items):
        async for item in items:
            assert item == "first"
            break  # the thread is now blocked reading a socket that stays open
    assert stream.closed.is_set()
    await asyncio.to_thread(
        wait_for,
        lambda: not [t for t in threading.enumerate() if t.name == "stackdeck-leave"],
    )


async def test_a_slow_consumer_holds_the_reader_back() -> None:
    """Bounded memory: the thread reads at most ``maxsize`` items (plus the one
    it is handing over) ahead of the consumer."""
    maxsize = 3
    pulled = 0
    consumed = 0
    lead: list[int] = []

    class Endless:
        def __iter__(self) -> Iterator[int]:
            nonlocal pulled
            while True:
                pulled += 1
                lead.append(pulled - consumed)
                yield pulled

        def close(self) -> None:
            pass

    items = stream_items(Endless, name="stackdeck-slow", maxsize=maxsize)
    async with contextlib.aclosing(items):
        async for _item in items:
            consumed += 1
            if consumed == 1:
                # hold on to the first item until the reader is as far ahead as it may go
                end = time.monotonic() + DEADLINE
                while pulled < consumed + maxsize + 1:
                    assert time.monotonic() < end, f"the reader stopped at {pulled}"
                    await asyncio.sleep(0.01)
            if consumed == 50:
                break
    assert max(lead) == maxsize + 1, max(lead)


# --- the daemon is away ------------------------------------------------------------------


@pytest.fixture
def away(tmp_path: Any) -> Settings:
    """Settings whose Docker socket does not exist."""
    return Settings(
        project="investment", docker_host=f"unix://{tmp_path}/docker.sock", request_timeout=2.0
    )


async def test_the_log_follower_fails_with_a_source_error(away: Settings) -> None:
    from console.core.sources.docker.logs import follow_logs

    with pytest.raises(SourceError) as caught:
        async for _ in follow_logs("investment_nginx_prod", settings=away):
            pass
    assert caught.value.source == "logs"
    await asyncio.to_thread(
        wait_for,
        lambda: not [t for t in threading.enumerate() if t.name.startswith("stackdeck-logs")],
    )


async def test_the_stream_sources_fail_their_poll(away: Settings) -> None:
    from console.core.sources.docker.events import EventsSource
    from console.core.sources.docker.handle import DockerHandle
    from console.core.sources.docker.stats import StatsSource

    handle = DockerHandle(away)
    events, stats = EventsSource(away, handle), StatsSource(away, handle)
    try:
        for source in (events, stats):
            with pytest.raises(SourceError) as caught:
                await source.poll()
            assert caught.value.source == source.name
            assert "cannot connect to the engine" in caught.value.message
        assert stats.stream_count == 0
    finally:
        await events.aclose()
        await stats.aclose()
        await handle.aclose()


def test_an_event_request_the_engine_refuses_fails_at_once(tmp_path: Any) -> None:
    """docker-py reads the status of ``/events`` only with the first event
    (which may be hours away); the source checks it when the stream opens."""
    import docker

    from console.core.sources.docker.events import open_events

    path = str(tmp_path / "refusing.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    body = b'{"message":"events are unavailable"}'

    def answer() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(
                b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    api = docker.APIClient(base_url=f"unix://{path}", version="1.41", timeout=DEADLINE)
    try:
        with pytest.raises(docker.errors.APIError, match="events are unavailable"):
            open_events(api, since=0.0, filters={"type": ["container"]})
    finally:
        api.close()
        server.close()
        thread.join(DEADLINE)
