"""Helpers of the platform API tests: Redis and PostgreSQL over the stack's
unix sockets, tokens, docker exec into the stack, polling with a deadline.

Nothing is mocked: every request goes to the real nginx on 127.0.0.1, every
query to the stack's real PostgreSQL/TimescaleDB and Redis.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import jwt

from tests.conftest import Stack

WATCHLIST_DEFAULT = "AAPL,MSFT,GOOGL,AMZN,NVDA"
# Symbols market-sim knows (a subset of its universe), never in the default watchlist.
OFF_WATCHLIST = [
    "KO",
    "PEP",
    "IBM",
    "ORCL",
    "CSCO",
    "INTC",
    "QCOM",
    "TXN",
    "NKE",
    "MCD",
    "SBUX",
    "UBER",
]


def pg(stack: Stack, query: str, *args: Any) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(stack.pg_dsn, timeout=10)
        try:
            return list(await conn.fetch(query, *args))
        finally:
            await conn.close()

    return asyncio.run(run())


def pg_val(stack: Stack, query: str, *args: Any) -> Any:
    rows = pg(stack, query, *args)
    return rows[0][0] if rows else None


def docker_exec(
    container: str, *argv: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", "exec", container, *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def container_health(container: str) -> str:
    proc = subprocess.run(
        ["docker", "inspect", "-f", "{{.State.Health.Status}}", container],
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.stdout.strip()


def wait_for(
    predicate: Callable[[], Any], *, deadline_s: float, what: str, interval: float = 0.5
) -> Any:
    """Poll until ``predicate()`` is truthy; the deadline only stops a broken stack hanging us."""
    end = time.monotonic() + deadline_s
    last: Any = None
    while time.monotonic() < end:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{what}: not reached (last: {last!r})")


def random_unknown_symbol() -> str:
    """A well-formed symbol no provider knows (and no negative cache entry has seen)."""
    return "ZQ" + "".join(secrets.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(6))


def sim_call(stack: Stack, method: str, path: str) -> dict[str, Any]:
    """Call market-sim's control API from inside its container (it is not published)."""
    code = (
        "import json,sys,urllib.request;"
        f"r=urllib.request.urlopen(urllib.request.Request('http://127.0.0.1:8100{path}',method='{method}'),timeout=10);"
        "sys.stdout.write(r.read().decode())"
    )
    proc = docker_exec(stack.container("market-sim"), "python3", "-c", code)
    assert proc.returncode == 0, proc.stderr[-500:]
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def make_token(
    stack: Stack,
    *,
    sub: str = "admin",
    role: str = "admin",
    expires_in: timedelta = timedelta(minutes=5),
    secret: str | None = None,
    issuer: str = "investment-api",
) -> str:
    now = datetime.now(UTC)
    claims = {
        "sub": sub,
        "role": role,
        "iat": int(now.timestamp()),
        "exp": int((now + expires_in).timestamp()),
        "iss": issuer,
    }
    return jwt.encode(claims, secret or stack.env["JWT_SECRET"], algorithm="HS256")


def login(api: httpx.Client, username: str, password: str) -> httpx.Response:
    return api.post("/api/auth/login", json={"username": username, "password": password})


def price_rows(stack: Stack, symbols: list[str]) -> int:
    return int(pg_val(stack, "SELECT count(*) FROM prices WHERE symbol = ANY($1::text[])", symbols))


def call_rows(stack: Stack, symbols: list[str]) -> int:
    return int(
        pg_val(stack, "SELECT count(*) FROM api_calls WHERE symbol = ANY($1::text[])", symbols)
    )
