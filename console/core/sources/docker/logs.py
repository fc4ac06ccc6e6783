"""A container's log: the last lines, then new ones as they come."""

from __future__ import annotations

import contextlib
import re
import struct
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from typing import Any

from console.core.config import Settings
from console.core.errors import SourceError, redact
from console.core.models import LogLine
from console.core.sources.docker.handle import DockerHandle
from console.core.sources.docker.inspect import container_name, is_tty, parse_docker_time
from console.core.sources.docker.stream import (
    ResponseStream,
    Stream,
    request_stream,
    stream_items,
)

__all__ = ["follow_logs", "parse_log_line"]

_LOG_TS = re.compile(r"^(\d{4}-\d\d-\d\dT\S+)\s(.*)$", re.DOTALL)


def parse_log_line(container: str, stream: str, line: str) -> LogLine:
    """Split docker's ``--timestamps`` prefix off one line."""
    match = _LOG_TS.match(line)
    at = parse_docker_time(match.group(1)) if match else None
    text = match.group(2) if (match and at is not None) else line
    return LogLine(
        at=at, container=container, stream="stderr" if stream == "stderr" else "stdout", text=text
    )


def _demux(raw: Any) -> Iterator[tuple[str, bytes]]:
    """Frames of docker's multiplexed log stream: (``stdout``|``stderr``, bytes)."""
    while True:
        header = raw.read(8)
        if not header or len(header) < 8:
            return
        kind, length = struct.unpack(">BxxxL", header)
        if not length:
            continue
        data = raw.read(length)
        if not data:
            return
        yield ("stderr" if kind == 2 else "stdout", data)


def _raw_chunks(raw: Any) -> Iterator[tuple[str, bytes]]:
    while True:
        data = raw.read1(65536) if hasattr(raw, "read1") else raw.read(4096)
        if not data:
            return
        yield ("stdout", data)


def _line_batches(
    frames: Iterator[tuple[str, bytes]], container: str, secrets: list[str]
) -> Iterator[list[LogLine]]:
    """Whole lines, one batch per frame; a line split over frames is joined.
    Every known secret is masked (an application may log a token in a URL,
    a DSN in a traceback) before a line leaves here."""
    buffers = {"stdout": b"", "stderr": b""}
    for stream_name, data in frames:
        *lines, rest = (buffers[stream_name] + data).split(b"\n")
        buffers[stream_name] = rest
        if lines:
            yield [
                parse_log_line(
                    container,
                    stream_name,
                    redact(ln.decode("utf-8", "replace").rstrip("\r"), secrets),
                )
                for ln in lines
            ]
    for stream_name, rest in buffers.items():
        if rest:
            yield [
                parse_log_line(
                    container, stream_name, redact(rest.decode("utf-8", "replace"), secrets)
                )
            ]


def open_logs(
    api: Any,
    container: str,
    *,
    tail: int | str,
    since: datetime | float | None,
    follow: bool,
    secrets: list[str],
) -> Stream[list[LogLine]]:
    """The log of ``container`` (name or id) as batches of lines."""
    attrs = api.inspect_container(container)
    name = container_name(attrs) or container
    params: dict[str, Any] = {
        "stdout": 1,
        "stderr": 1,
        "timestamps": 1,
        "follow": 1 if follow else 0,
        "tail": str(tail),
    }
    if since is not None:
        params["since"] = since.timestamp() if isinstance(since, datetime) else float(since)
    # Not APIClient.logs: it merges stdout and stderr (see request_stream).
    response = request_stream(
        api, "/containers/{0}/logs", str(attrs["Id"]), params=params, timeout=None
    )
    frames = _raw_chunks(response.raw) if is_tty(attrs) else _demux(response.raw)
    return ResponseStream(_line_batches(frames, name, secrets), response)


async def follow_logs(
    container: str,
    tail: int | str = 200,
    since: datetime | float | None = None,
    *,
    follow: bool = True,
    settings: Settings | None = None,
    handle: DockerHandle | None = None,
    batch_max: int = 500,
) -> AsyncIterator[LogLine]:
    """Lines of a container's log: the last ``tail`` lines, then (``follow``)
    new ones as they come, until the consumer stops iterating.

    ``container`` is a name or id. ``since`` is a datetime or a Unix time.
    The reading thread is stopped (its socket shut down) as soon as the
    consumer breaks out of the loop or is cancelled. Bounded memory: the
    thread waits for the consumer when ``batch_max`` batches are queued.
    Failures are raised as :class:`~console.core.errors.SourceError` ("logs").
    """
    own_handle = handle is None
    engine = handle if handle is not None else DockerHandle(settings or Settings(), workers=1)
    secrets = (settings or engine.settings).secret_values()

    def open_stream() -> Stream[list[LogLine]]:
        return open_logs(
            engine.api, container, tail=tail, since=since, follow=follow, secrets=secrets
        )

    batches = stream_items(
        open_stream,
        name=f"stackdeck-logs-{container}",
        maxsize=batch_max,
        wrap_error=lambda exc: SourceError("logs", redact(exc)),
    )
    try:
        async with contextlib.aclosing(batches):
            async for batch in batches:
                for line in batch:
                    yield line
    finally:
        if own_handle:
            engine.close()
