"""Sick sources on a unix socket, for the UI-responsiveness benchmark.

``delay``: a proxy in front of a real unix socket (PostgreSQL's) that holds
every byte coming back from the server for ``--delay`` seconds: a database
that answers, but in 5 s. Requests go through at once.

``blackhole``: accepts connections, reads whatever comes, never answers: a
Docker daemon that hangs (``DOCKER_HOST=unix://<path>``).

An address is a unix socket's path, or ``tcp:HOST:PORT`` (a loopback TCP
port: Prometheus' HTTP API for the console's history).

Runs as a process of its own so its work never lands on the event loop that
is being measured. Stops on SIGTERM or after ``--max-seconds``.

    python3 -m bench.tools.slowsock delay --listen /tmp/x/.s.PGSQL.5432 \\
        --target /run/sdbench/postgresql/.s.PGSQL.5432 --delay 5
    python3 -m bench.tools.slowsock blackhole --listen /tmp/x/docker.sock
    python3 -m bench.tools.slowsock delay --listen tcp:127.0.0.1:19090 \\
        --target tcp:127.0.0.1:28300 --delay 5
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
from pathlib import Path
from typing import Any


async def _pump_now(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(Exception):
        writer.write_eof()


async def _pump_late(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float
) -> None:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def deliver() -> None:
        while True:
            due, data = await queue.get()
            if not data:
                with contextlib.suppress(Exception):
                    writer.close()
                return
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()

    task = asyncio.create_task(deliver())
    with contextlib.suppress(Exception):
        while data := await reader.read(65536):
            queue.put_nowait((loop.time() + delay, data))
    queue.put_nowait((loop.time() + delay, b""))
    with contextlib.suppress(Exception):
        await task


def tcp_address(address: str) -> tuple[str, int] | None:
    """``tcp:HOST:PORT`` -> (host, port); a unix socket's path -> None."""
    if not address.startswith("tcp:"):
        return None
    host, _, port = address[4:].rpartition(":")
    return host or "127.0.0.1", int(port)


async def _connect(target: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    tcp = tcp_address(target)
    if tcp is not None:
        return await asyncio.open_connection(*tcp)
    return await asyncio.open_unix_connection(target)


async def _serve(handle: Any, listen: str) -> asyncio.AbstractServer:
    tcp = tcp_address(listen)
    if tcp is not None:
        return await asyncio.start_server(handle, *tcp)
    return await asyncio.start_unix_server(handle, path=listen)


async def delay_proxy(listen: str, target: str, delay: float) -> asyncio.AbstractServer:
    async def handle(creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        try:
            sreader, swriter = await _connect(target)
        except OSError:
            cwriter.close()
            return
        try:
            await asyncio.gather(_pump_now(creader, swriter), _pump_late(sreader, cwriter, delay))
        except asyncio.CancelledError:  # the proxy is stopping
            pass
        with contextlib.suppress(Exception):
            cwriter.close()
            swriter.close()

    return await _serve(handle, listen)


async def blackhole(listen: str) -> asyncio.AbstractServer:
    held: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # keep the connection open; answer nothing, ever
        with contextlib.suppress(Exception):
            while await reader.read(65536):
                pass

    return await _serve(handle, listen)


def _clear(listen: Path) -> None:
    listen.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        listen.unlink()


async def main_async(args: argparse.Namespace) -> None:
    unix = tcp_address(args.listen) is None
    listen = Path(args.listen)
    if unix:
        _clear(listen)
    if args.mode == "delay":
        server = await delay_proxy(args.listen, args.target, args.delay)
    else:
        server = await blackhole(args.listen)
    if unix:
        os.chmod(listen, 0o777)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("ready", flush=True)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=args.max_seconds)
    server.close()
    if unix:
        _clear(listen)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode", choices=["delay", "blackhole"])
    parser.add_argument("--listen", required=True)
    parser.add_argument("--target")
    parser.add_argument("--delay", type=float, default=5.0)
    parser.add_argument("--max-seconds", type=float, default=900.0)
    args = parser.parse_args()
    if args.mode == "delay" and not args.target:
        parser.error("delay needs --target")
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
