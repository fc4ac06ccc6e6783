"""What one health request costs the console's event loop (issue 15, fourth
pass): the health source's client keeps every connection a poll opens, and
a request does not search the import path.

Counted, not timed, against a real HTTP/1.1 server on 127.0.0.1 (an
``httpx.MockTransport`` would skip httpcore, where both costs were):

- httpcore asks ``sniffio`` which async library runs, four times a request;
  without sniffio installed each ask was a failed ``import``, a search of
  every ``sys.path`` entry (~0.1 ms each, a fifth of a request's CPU);
- a slow poll asks 12 checks at once; with 8 connections kept alive, 4 were
  closed after each and opened again at the next.
"""

from __future__ import annotations

import asyncio
import importlib.abc
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from console.core.config import Settings
from console.core.sources.health import HealthSource

BODY = b'{"status": "ok", "version": "v1.2.3", "colour": "blue"}'
METRICS = (
    b"# TYPE http_request_duration_seconds histogram\n"
    b'http_request_duration_seconds_bucket{le="+Inf"} 1\n'
)


class Server:
    """nginx's stand-in: HTTP/1.1 keep-alive, counts connections and requests."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.requests += 1
                path = head.split(b" ", 2)[1]
                body = METRICS if path.endswith(b"/metrics") else BODY
                await asyncio.sleep(0.02)  # a backend's answer: the requests overlap
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    b"content-length: %d\r\n\r\n%s" % (len(body), body)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.CancelledError, ConnectionError):
            pass
        finally:
            writer.close()


class Searches(importlib.abc.MetaPathFinder):
    """Counts every module search that reaches ``sys.meta_path``."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> Any:
        self.names.append(fullname)
        return None


async def test_health_polls_reuse_their_connections_and_search_no_module(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = Server()
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    monkeypatch.setenv("HTTP_PORT", str(port))
    source = HealthSource(Settings(repo_root=clean_env))
    searches = Searches()
    try:
        await source.poll()  # the first poll asks everything: 17 requests
        opened = server.connections
        sys.meta_path.insert(0, searches)
        for _ in range(3):
            source._slow_at = None  # every check again, 12 of them at once
            await source.poll()
    finally:
        if searches in sys.meta_path:
            sys.meta_path.remove(searches)
        await source.aclose()
        listener.close()
        await listener.wait_closed()
    assert server.requests == 4 * 17
    # every connection the first poll opened is kept for the next ones
    assert server.connections == opened, (opened, server.connections)
    # 51 requests, no import searched for (sniffio is installed)
    assert searches.names == [], searches.names[:3]
