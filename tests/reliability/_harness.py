"""Tools the fault tests share: bounded load on nginx, acknowledged writes,
docker fault injection, and the figures written to docs/RELIABILITY.md.

Nothing here mocks anything: the load loop speaks HTTP to the stack's nginx on
127.0.0.1, the writer commits rows to the stack's PostgreSQL over its unix
socket, the faults are real signals to real containers.

Every loop is bounded twice, by a count and by a time, and stops by itself,
so a test that dies half-way cannot leave traffic running.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from tests.load import LoadLoop as LoadLoop
from tests.load import LoadResult as LoadResult
from tests.load import Sample as Sample

REPO = Path(__file__).resolve().parents[2]
FIGURES = Path(
    os.environ.get("STACKDECK_RELIABILITY_FIGURES", REPO / "var" / "reliability" / "figures.jsonl")
)
RUN_ID = os.environ.get("STACKDECK_RELIABILITY_RUN") or datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


# --- waiting -----------------------------------------------------------------


class NotReached(AssertionError):
    """A condition did not come true before its safety deadline."""


def wait_until(
    predicate: Callable[[], Any],
    *,
    timeout: float,
    interval: float = 0.25,
    what: str = "condition",
) -> float:
    """Poll ``predicate`` until it returns something truthy; return the seconds
    it took. The deadline only keeps a broken stack from hanging the suite:
    tests assert *that* a state is reached, the time is a figure."""
    t0 = time.monotonic()
    last: Any = None
    while True:
        try:
            last = predicate()
        except Exception as exc:  # a probe may fail while the fault lasts
            last = exc
        else:
            if last:
                return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            raise NotReached(f"{what}: not reached within {timeout:g} s (last: {last!r})")
        time.sleep(interval)


async def async_wait_until(
    predicate: Callable[[], Any],
    *,
    within: float,
    interval: float = 0.2,
    what: str = "condition",
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> float:
    """:func:`wait_until` for the event loop (the predicate is synchronous;
    ``sleep`` lets something else run between tries: by default the loop,
    a Textual pilot's ``pause`` for a running app)."""
    t0 = time.monotonic()
    last: Any = None
    while True:
        try:
            last = predicate()
        except Exception as exc:
            last = exc
        else:
            if last:
                return time.monotonic() - t0
        if time.monotonic() - t0 > within:
            raise NotReached(f"{what}: not reached within {within:g} s (last: {last!r})")
        await sleep(interval)


# --- bounded load on nginx: the suite's one load loop (tests/load.py) ---------

# LoadLoop, LoadResult and Sample are imported at the top and re-exported.


# --- acknowledged writes ---------------------------------------------------------


def run_sync(factory: Callable[[], Any]) -> Any:
    """``asyncio.run(factory())`` on a thread of its own, so it works from
    synchronous code and from inside a running event loop alike."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(factory())
        except BaseException as exc:
            box["error"] = exc

    t = threading.Thread(target=target, name="run-sync")
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")


ACKS_DDL = """
CREATE TABLE IF NOT EXISTS reliability_acks (
    id      bigserial PRIMARY KEY,
    tag     text NOT NULL,
    at      timestamptz NOT NULL DEFAULT now()
)
"""


class AckedWriter:
    """Commits one row at a time to PostgreSQL and remembers the ids whose
    COMMIT was acknowledged. After the fault, :meth:`verify` counts how many
    of them are still there. Runs in a thread with its own event loop, so a
    busy test loop cannot slow it down; bounded in rows and time."""

    def __init__(
        self,
        dsn: str,
        *,
        tag: str | None = None,
        max_rows: int = 20000,
        max_seconds: float = 150.0,
        pause: float = 0.02,
    ) -> None:
        self.dsn = dsn
        self.tag = tag or f"rel-{uuid.uuid4().hex[:12]}"
        self.max_rows = max_rows
        self.max_seconds = max_seconds
        self.pause = pause
        self.acked: list[int] = []
        self.failures: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._run()), name="acked-writer", daemon=True
        )

    def __enter__(self) -> AckedWriter:
        run_sync(lambda: ensure_acks_table(self.dsn))
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    @property
    def acked_count(self) -> int:
        with self._lock:
            return len(self.acked)

    async def _run(self) -> None:
        t_end = time.monotonic() + self.max_seconds
        conn: asyncpg.Connection | None = None
        try:
            while (
                not self._stop.is_set()
                and time.monotonic() < t_end
                and len(self.acked) < self.max_rows
            ):
                try:
                    if conn is None or conn.is_closed():
                        conn = await asyncpg.connect(self.dsn, timeout=3, command_timeout=5)
                    row_id = await conn.fetchval(
                        "INSERT INTO reliability_acks (tag) VALUES ($1) RETURNING id", self.tag
                    )
                    with self._lock:
                        self.acked.append(int(row_id))
                except (
                    OSError,
                    asyncpg.PostgresError,
                    asyncpg.InterfaceError,
                    TimeoutError,
                ) as exc:
                    self.failures[type(exc).__name__] += 1
                    if conn is not None:
                        conn.terminate()
                    conn = None
                    await asyncio.sleep(0.2)
                    continue
                await asyncio.sleep(self.pause)
        finally:
            if conn is not None:
                conn.terminate()

    def verify(self) -> tuple[int, int]:
        """(acknowledged, found): every acknowledged id must be found."""
        with self._lock:
            ids = list(self.acked)
        found = run_sync(lambda: _count_ids(self.dsn, self.tag, ids))
        return len(ids), found


async def ensure_acks_table(dsn: str) -> None:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        await conn.execute(ACKS_DDL)
    finally:
        await conn.close()


async def _count_ids(dsn: str, tag: str, ids: list[int]) -> int:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM reliability_acks WHERE tag = $1 AND id = ANY($2::bigint[])",
                tag,
                ids,
            )
        )
    finally:
        await conn.close()


async def count_rows(dsn: str, table: str) -> int:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))  # table: a fixed name
    finally:
        await conn.close()


def pg_query(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    """One query from synchronous code (its own short-lived loop)."""

    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(dsn, timeout=5, command_timeout=10)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    return run_sync(run)


LAST_VACUUM = "SELECT last_vacuum FROM pg_stat_user_tables WHERE relname = $1"
"""When a table was last vacuumed by hand (NULL: never)."""


def last_vacuum(dsn: str, table: str) -> datetime | None:
    """The ``last_vacuum`` of ``table`` (None: never vacuumed by hand)."""
    rows = pg_query(dsn, LAST_VACUUM, table)
    return rows[0]["last_vacuum"] if rows else None


# --- docker -------------------------------------------------------------------


def docker(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=check, timeout=timeout
    )


def inspect(container: str) -> dict[str, Any]:
    out = docker("inspect", container, timeout=20).stdout
    return dict(json.loads(out)[0])


def state(container: str) -> tuple[str, str | None, int]:
    """(status, health or None, restart count) of a container."""
    data = inspect(container)
    st = data.get("State") or {}
    return (
        str(st.get("Status")),
        (st.get("Health") or {}).get("Status"),
        int(data.get("RestartCount") or 0),
    )


def running_and_healthy(container: str) -> bool:
    status, health, _ = state(container)
    return status == "running" and health in (None, "healthy")


def crash(container: str) -> int:
    """SIGKILL the container's main process from the host: a crash, not a
    `docker kill`, so the restart policy (unless-stopped) applies. Returns the pid."""
    pid = int(inspect(container)["State"]["Pid"])
    if pid <= 0:
        raise RuntimeError(f"{container} has no running process")
    os.kill(pid, 9)
    return pid


def engine_answers() -> bool:
    try:
        return docker("info", "-f", "{{.ServerVersion}}", check=False, timeout=10).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def wait_engine_settled(timeout: float = 180.0) -> float:
    """Wait until ``docker info`` answers three times in a row, at most
    ``timeout`` s (a daemon loaded by the tests before may miss one 10 s
    answer without being down); returns the seconds waited, fails with the
    reason otherwise."""
    t0 = time.monotonic()
    streak = 0
    while time.monotonic() - t0 < timeout:
        streak = streak + 1 if engine_answers() else 0
        if streak >= 3:
            return time.monotonic() - t0
        time.sleep(1.0)
    raise AssertionError(
        f"the Docker engine did not answer `docker info` steadily within {timeout:.0f} s "
        "before the test (see /var/log/stackdeck-dockerd.log)"
    )


# --- figures ------------------------------------------------------------------


@dataclass
class Figure:
    """One row of the RELIABILITY.md table."""

    fault: str
    operator_saw: str = ""
    recover_s: float | None = None
    requests: int = 0
    requests_failed: int = 0
    requests_retried: int = 0
    """Keep-alive retries (tests/load.py's policy), reported beside the failures."""
    rows_acked: int | None = None
    rows_lost: int | None = None
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def load(self, result: LoadResult) -> None:
        """The load loop's figures: sent, failed, retried."""
        self.requests = result.total
        self.requests_failed = len(result.failed())
        self.requests_retried = result.retries


@contextlib.contextmanager
def figure(fault: str) -> Iterator[Figure]:
    """A figure for one fault, recorded whatever happens (a failed test's
    figure says so, with the first line of the failure)."""
    fig = Figure(fault=fault)
    try:
        yield fig
    except BaseException as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        fig.notes = (fig.notes + "; " if fig.notes else "") + f"TEST FAILED: {first[:200]}"
        fig.extra["passed"] = False
        record(fig)
        raise
    fig.extra["passed"] = True
    record(fig)


def record(fig: Figure, *, test: str = "") -> None:
    """Append a measured figure to var/reliability/figures.jsonl (one run id per session)."""
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    row = {
        "run": RUN_ID,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "test": test or os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0],
        **fig.__dict__,
    }
    with FIGURES.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(row, default=str) + "\n")


# --- the console's real monitor ----------------------------------------------------


def console_settings(stack: Any, **overrides: Any) -> Any:
    """Settings of the console for the test stack, with short refreshes so a
    fault shows in seconds (the defaults are 1-30 s; the backoff cap 30 s)."""
    values: dict[str, Any] = {
        "refresh": {
            "containers": 1.0,
            "stats": 1.0,
            "health": 1.0,
            "database": 1.0,
            "quotas": 1.0,
            "cost": 5.0,
            "events": 1.0,
        },
        "request_timeout": 3.0,
        "backoff_cap": 4.0,
    }
    values.update(overrides)
    return stack.settings(**values)


class MonitorWatch:
    """The console's real :class:`~console.core.monitor.Monitor`, with a sink
    that records everything the operator's screen would be fed."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self.received: list[tuple[float, str, Any]] = []
        self.monitor: Any = None

    def _sink(self, kind: str, payload: Any) -> None:
        self.received.append((time.monotonic(), kind, payload))

    async def __aenter__(self) -> MonitorWatch:
        from console.core.monitor import Monitor

        self.monitor = Monitor(self.settings, self._sink)
        await self.monitor.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.monitor is not None:
            await asyncio.wait_for(self.monitor.stop(), timeout=30)

    # --- what the operator sees -------------------------------------------------

    def latest(self, kind: str) -> Any:
        return self.monitor.latest.get(kind)

    def source_state(self, name: str) -> Any:
        return self.monitor.states.get(name)

    def payloads(self, kind: str, since: float = 0.0) -> list[Any]:
        return [p for t, k, p in list(self.received) if k == kind and t >= since]

    def container(self, name: str) -> Any:
        snap = self.latest("containers")
        if snap is None:
            return None
        return next((c for c in snap.containers if c.name == name), None)

    def health(self, path: str, target: str) -> Any:
        snap = self.latest("health")
        if snap is None:
            return None
        return next((r for r in snap.results if r.path == path and r.target == target), None)

    async def wait(
        self, predicate: Callable[[], Any], *, within: float = 60, what: str = ""
    ) -> float:
        return await async_wait_until(predicate, within=within, what=what)

    async def seen_in_refreshes(
        self,
        kind: str,
        predicate: Callable[[Any], bool],
        *,
        since: float,
        refreshes: int = 2,
        within: float = 60,
        what: str = "",
    ) -> tuple[int, float]:
        """Wait for a ``kind`` snapshot taken after ``since`` that satisfies
        ``predicate``; return (its rank among the snapshots after ``since``,
        seconds). The caller asserts the rank: "within one refresh" means the
        first or second snapshot (one may have been in flight at ``since``)."""

        def find() -> tuple[int, float] | None:
            for rank, (t, p) in enumerate(
                [(t, p) for t, k, p in list(self.received) if k == kind and t >= since], 1
            ):
                if predicate(p):
                    return rank, t - since
            return None

        await async_wait_until(find, within=within, what=what or f"{kind} snapshot")
        found = find()
        assert found is not None
        return found

    def failing_state_since(self, name: str, since: float) -> Any:
        """The first ``ok=False`` state of source ``name`` reported after ``since``."""
        for t, k, p in list(self.received):
            if k == "source" and t >= since and p.name == name and not p.ok:
                return p
        return None

    def recovered_since(self, name: str, since: float) -> Any:
        """An ``ok=True`` state of ``name`` reported after ``since``."""
        for t, k, p in list(self.received):
            if k == "source" and t >= since and p.name == name and p.ok:
                return p
        return None


# --- the real Textual app --------------------------------------------------------


def screen_text(app: Any) -> str:
    """Every character on the app's current screen, as plain text (rows
    joined with newlines): what the operator reads."""
    strips = app.screen._compositor.render_strips()
    return "\n".join(strip.text for strip in strips)


class SecretValues(dict[str, str]):
    """Secrets by name whose repr shows the names only: pytest prints a failing
    test's fixture values, and these must never reach a log."""

    def __repr__(self) -> str:
        return f"SecretValues({sorted(self)})"

    __str__ = __repr__


def secret_values(stack: Any) -> SecretValues:
    """The stack's secrets by name (never print the values)."""
    names = (
        "POSTGRES_PASSWORD",
        "REDIS_PASSWORD",
        "JWT_SECRET",
        "ADMIN_TOKEN",
        "ADMIN_PASSWORD",
        "TEST_PASSWORD",
    )
    return SecretValues({n: stack.env[n] for n in names if stack.env.get(n)})


def _windows(value: str, window: int) -> set[str]:
    value = value.lower()
    if len(value) <= window:
        return {value}
    return {value[i : i + window] for i in range(len(value) - window + 1)}


def find_secrets(text: str, secrets: dict[str, str], window: int = 12) -> list[str]:
    """Names of the secrets of which any ``window``-character piece appears in
    ``text``, case-insensitively (a secret cut at a panel's edge, truncated
    by a message or upper-cased still leaks). Returns names only, so an
    assertion message never shows a value."""
    low = text.lower()
    flat = low.replace("\n", "")
    hits = []
    for name, value in secrets.items():
        if any(p in low or p in flat for p in _windows(value, window)):
            hits.append(name)
    return hits


async def app_wait(
    pilot: Any, predicate: Callable[[], Any], *, within: float = 30, what: str = ""
) -> float:
    """Let the app run until ``predicate`` holds (safety deadline only)."""
    return await async_wait_until(
        predicate, within=within, what=what or "app condition", sleep=pilot.pause
    )


def mask(text: str, secrets: dict[str, str], window: int = 8) -> str:
    """``text`` with every secret, and every token sharing an 8-character piece
    with one (truncated, upper-cased), replaced by ``<NAME>``: safe to print."""
    import re

    pieces = {name: _windows(value, window) for name, value in secrets.items() if value}

    def repl(m: re.Match[str]) -> str:
        token = m.group(0)
        for name, wins in pieces.items():
            if any(w in wins for w in _windows(token, window)):
                return f"<{name}>"
        return token

    return re.sub(rf"[A-Za-z0-9._~+/=\-]{{{window},}}", repl, text)


async def hold_table(dsn: str, table: str) -> tuple[Any, Any, datetime | None]:
    """Hold ``table`` (created if missing, shaped like ``reliability_acks``)
    under SHARE UPDATE EXCLUSIVE in an open transaction, so a VACUUM of it
    waits, deterministically. Returns the connection (close it), the
    transaction (roll it back to let the VACUUM go) and the table's
    ``last_vacuum`` before."""
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {table} (id bigserial PRIMARY KEY, tag text NOT NULL, "
            "at timestamptz NOT NULL DEFAULT now())"
        )
        before = await conn.fetchval(LAST_VACUUM, table)
        tx = conn.transaction()
        await tx.start()
        await conn.execute(f"LOCK TABLE {table} IN SHARE UPDATE EXCLUSIVE MODE")
    except BaseException:
        await conn.close()
        raise
    return conn, tx, before
