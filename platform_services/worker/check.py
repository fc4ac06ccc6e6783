"""``python3 -m platform_services.worker --check``: is the worker's heartbeat fresh?

Standard library only, speaking RESP over a socket: importing the worker's
dependencies (redis, asyncpg, httpx, pydantic) can take seconds on a loaded
2-core host. Exit status 0 when ``worker:heartbeat`` is younger than
``WORKER_HEARTBEAT_MAX_AGE_S`` (60 s), 1 otherwise (the reason on stderr).

Compose's health check no longer runs this (even a lean Python start timed
out there on a busy host): it reads the age of ``WORKER_HEARTBEAT_FILE``,
which the worker touches after each heartbeat it writes to Redis (runner.py).
This stays for people and scripts: ``docker exec <worker> python3 -m
platform_services.worker --check``.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from urllib.parse import parse_qs, unquote, urlsplit

from platform_services.providers.keys import WORKER_HEARTBEAT_KEY


class CheckError(Exception):
    pass


def _command(*parts: str) -> bytes:
    out = [f"*{len(parts)}\r\n".encode()]
    for part in parts:
        data = part.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class _Reader:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise CheckError("connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def reply(self) -> bytes | None:
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"-":
            raise CheckError("redis error: " + rest.decode(errors="replace").split(" ", 1)[0])
        if kind in (b"+", b":"):
            return rest
        if kind == b"$":
            size = int(rest)
            if size < 0:
                return None
            while len(self.buf) < size + 2:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise CheckError("connection closed")
                self.buf += chunk
            data, self.buf = self.buf[:size], self.buf[size + 2 :]
            return data
        raise CheckError("unexpected reply")


def read_key(url: str, key: str, timeout: float = 3.0) -> bytes | None:
    """GET ``key`` from the Redis at ``url`` (redis://, rediss:// not supported, unix://)."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    password: str | None = (query.get("password") or [""])[0] or None
    if parts.password:
        password = unquote(parts.password)
    username = unquote(parts.username) if parts.username else None
    db = "0"
    if parts.scheme == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(parts.path)
        db = (query.get("db") or ["0"])[0]
    elif parts.scheme == "redis":
        sock = socket.create_connection(
            (parts.hostname or "localhost", parts.port or 6379), timeout
        )
        sock.settimeout(timeout)
        if parts.path.strip("/"):
            db = parts.path.strip("/")
    else:
        raise CheckError(f"unsupported Redis URL scheme {parts.scheme!r}")
    with sock:
        reader = _Reader(sock)
        if password:
            auth = ("AUTH", username, password) if username else ("AUTH", password)
            sock.sendall(_command(*auth))
            reader.reply()
        if db != "0":
            sock.sendall(_command("SELECT", db))
            reader.reply()
        sock.sendall(_command("GET", key))
        return reader.reply()


def check(url: str | None = None, max_age_s: float | None = None) -> int:
    url = url or os.environ.get("REDIS_URL", "redis://localhost:6379/0")
    if max_age_s is None:
        max_age_s = float(os.environ.get("WORKER_HEARTBEAT_MAX_AGE_S", "60"))
    try:
        raw = read_key(url, WORKER_HEARTBEAT_KEY)
    except (OSError, CheckError, ValueError) as exc:
        print(f"unhealthy: cannot read the heartbeat ({type(exc).__name__})", file=sys.stderr)
        return 1
    if raw is None:
        print("unhealthy: no heartbeat", file=sys.stderr)
        return 1
    try:
        age = time.time() - float(json.loads(raw)["epoch"])
    except (ValueError, KeyError, TypeError):
        print("unhealthy: unreadable heartbeat", file=sys.stderr)
        return 1
    if age > max_age_s:
        print(f"unhealthy: heartbeat {age:.0f}s old", file=sys.stderr)
        return 1
    print(f"healthy: heartbeat {age:.0f}s old")
    return 0
