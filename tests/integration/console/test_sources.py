"""The console's sources and monitor against the real bundled stack.

No mocks: the real engine, nginx, backends, PostgreSQL/TimescaleDB and Redis
of the stack the ``stack`` fixture points at. Conditions that take a moment
(a stats stream's first samples, a recovery) are waited for with a generous
deadline; nothing here asserts on wall-clock time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import subprocess
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis

from console.core.config import Settings
from console.core.models import DatabaseSnapshot, SourceState
from console.core.monitor import Monitor
from console.core.ops.context import SERVICES as ALL_SERVICES
from console.core.sources.cost import CostSource
from console.core.sources.docker.containers import ContainersSource
from console.core.sources.docker.events import EventsSource
from console.core.sources.docker.handle import DockerHandle
from console.core.sources.docker.inspect import parse_docker_time
from console.core.sources.docker.logs import follow_logs
from console.core.sources.docker.stats import StatsSource
from console.core.sources.health import FRONTEND_PATH, HEALTH_PATHS, HealthSource
from console.core.sources.postgres import PostgresSource
from console.core.sources.redis_quota import QuotaSource
from console.core.stack import published_ports
from platform_services.providers import keys
from tests.conftest import base_image
from tests.integration.console.engine_buffer import forget_in_the_engine

pytestmark = pytest.mark.stack

SERVICES = set(ALL_SERVICES)
"""Every service the console knows of: the stack runs exactly these."""
DEADLINE = 60.0


def settings_for(stack: Any, **overrides: Any) -> Settings:
    """Settings for the test stack, built from the fixture (not from ~/.config)."""
    values: dict[str, Any] = dict(
        repo_root=stack.repo,
        project=stack.name,
        base_url=stack.base_url,
        run_dir=stack.run_dir,
        state_dir=stack.state_dir,
        pg_dsn=stack.pg_dsn,
        pg_password=stack.env.get("POSTGRES_PASSWORD") or None,
        redis_url=f"unix://{stack.redis_socket}",
        redis_password=stack.env["REDIS_PASSWORD"],
        admin_token=stack.env.get("ADMIN_TOKEN") or None,
        newsapi_daily_limit=int(stack.env.get("NEWSAPI_DAILY_LIMIT") or 100),
        refresh={
            "containers": 1,
            "stats": 1,
            "health": 1,
            "database": 1,
            "quotas": 1,
            "cost": 2,
            "events": 1,
        },
        backoff_cap=2.0,
        request_timeout=5.0,
    )
    values.update(overrides)
    return Settings(**values)


def every_source_ok(monitor: Monitor) -> bool:
    """Every source of the monitor (the stack's Prometheus history and alerts
    too) has reported, and each one's last poll succeeded."""
    return (
        bool(monitor.sources)
        and len(monitor.states) == len(monitor.sources)
        and all(s.ok for s in monitor.states.values())
    )


async def eventually(
    check: Callable[[], Any], *, deadline: float = DEADLINE, every: float = 0.25
) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``deadline``."""
    end = time.monotonic() + deadline
    last_exc: BaseException | None = None
    while time.monotonic() < end:
        try:
            result = check()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return result
        except AssertionError as exc:
            last_exc = exc
        await asyncio.sleep(every)
    if last_exc:
        raise last_exc
    pytest.fail(f"condition not met within {deadline} s")


def running_containers(stack: Any) -> set[str]:
    return set(stack.project_containers())


def docker(*args: str) -> str:
    """Run the docker CLI (blocking; the tests' own set-up, not the code under test)."""
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout


def inspect(name: str) -> dict[str, Any]:
    out = subprocess.run(
        ["docker", "inspect", name], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out)[0]


@pytest.fixture
async def handle(stack: Any) -> AsyncIterator[DockerHandle]:
    h = DockerHandle(settings_for(stack))
    yield h
    await h.aclose()


# --- engine -----------------------------------------------------------------------------


async def test_containers_of_the_project_with_health(stack: Any, handle: DockerHandle) -> None:
    snap = await ContainersSource(handle.settings, handle).poll()
    by_service = {c.service: c for c in snap.containers}
    assert snap.project == stack.name
    assert set(by_service) == SERVICES
    assert snap.engine_version
    running = running_containers(stack)
    for c in snap.containers:
        assert c.name == stack.container(c.service)
        if c.name in running:
            assert c.state == "running"
            assert c.health in ("healthy", "unhealthy", "starting"), c
            assert c.started_at is not None

    # health as the engine sees it (a loaded host can make a check time out,
    # so compare with docker's own view rather than expect "healthy")
    async def agrees() -> bool:
        fresh = await ContainersSource(handle.settings, handle).poll()
        return all(
            c.health == (inspect(c.name)["State"].get("Health") or {}).get("Status")
            for c in fresh.containers
            if c.name in running
        )

    await eventually(agrees)
    active = stack.env.get("ACTIVE_COLOUR", "blue")
    assert snap.serving_colour == active
    blue = by_service["backend_blue"]
    assert (blue.colour, blue.image, blue.tag) == (
        "blue",
        stack.backend_image,
        stack.env["BLUE_VERSION"],
    )
    assert blue.version == stack.env["BLUE_VERSION"]
    assert by_service["backend_green"].colour == "green"
    https = published_ports(stack.env, stack.http_port)["HTTPS_PORT"]
    assert sorted(by_service["nginx"].ports) == sorted(
        [f"127.0.0.1:{stack.http_port}->80/tcp", f"127.0.0.1:{https}->443/tcp"]
    )
    assert by_service["db"].restart_count == inspect(stack.container("db"))["RestartCount"]


@pytest.mark.destructive
async def test_one_source_sees_a_restart_and_a_stop(stack: Any, handle: DockerHandle) -> None:
    """The source reuses inspect output while a container's list entry stays
    the same: a restart and a stop must still show on the next poll."""
    source = ContainersSource(handle.settings, handle)
    name = stack.container("market-sim")
    before = next(c for c in (await source.poll()).containers if c.name == name)
    assert before.state == "running" and before.started_at is not None
    docker("restart", "-t", "2", name)
    after = next(c for c in (await source.poll()).containers if c.name == name)
    assert after.started_at is not None and after.started_at > before.started_at
    assert after.restart_count == inspect(name)["RestartCount"]
    try:
        docker("stop", "-t", "2", name)
        stopped = next(c for c in (await source.poll()).containers if c.name == name)
        assert (stopped.state, stopped.started_at) == ("exited", None)
    finally:
        docker("start", name)

    async def healthy_again() -> bool:
        fresh = next(c for c in (await source.poll()).containers if c.name == name)
        return fresh.state == "running" and fresh.health == "healthy"

    await eventually(healthy_again, deadline=90)


async def test_logs_tail_and_follow(stack: Any, handle: DockerHandle) -> None:
    nginx = stack.container("nginx")
    marker = f"stackdeck-log-probe-{uuid.uuid4().hex[:8]}"
    lines = [line async for line in follow_logs(nginx, tail=5, follow=False, handle=handle)]
    assert 0 < len(lines) <= 5
    assert all(line.container == nginx for line in lines)

    found: list[str] = []

    async def follow() -> None:
        async for line in follow_logs(nginx, tail=0, handle=handle):
            if marker in line.text:
                found.append(line.text)
                assert line.at is not None
                return

    task = asyncio.create_task(follow())
    async with httpx.AsyncClient(base_url=stack.base_url) as client:
        await asyncio.sleep(0.5)  # let the follower attach
        for _ in range(5):
            await client.get(f"/{marker}")
            await asyncio.sleep(0.3)
            if task.done():
                break
    await asyncio.wait_for(task, timeout=DEADLINE)
    assert found and marker in found[0]


async def test_a_log_follower_stops_reading_as_soon_as_it_is_closed(
    stack: Any, handle: DockerHandle
) -> None:
    """Closing the follower shuts its connection down: the reading thread, blocked
    on a log that will not move for minutes, ends at once (not with the container)."""
    name = f"{stack.name}-quiet-{uuid.uuid4().hex[:6]}"
    docker(
        "run", "-d", "--rm", "--name", name, base_image(), "sh", "-c", "echo ready; exec sleep 300"
    )
    try:
        lines = follow_logs(name, tail=10, handle=handle)
        first = await asyncio.wait_for(anext(lines), timeout=DEADLINE)
        assert (first.container, first.text) == (name, "ready")
        assert first.at is not None
        await lines.aclose()

        def reader_gone() -> bool:
            return not [t for t in threading.enumerate() if t.name == f"stackdeck-logs-{name}"]

        await eventually(reader_gone)
        assert docker("inspect", "-f", "{{.State.Running}}", name).strip() == "true"
    finally:
        docker("rm", "-f", name)


# --- stats ------------------------------------------------------------------------------


async def test_stats_stream_every_running_container(stack: Any, handle: DockerHandle) -> None:
    source = StatsSource(handle.settings, handle)
    try:
        running = running_containers(stack)
        assert running

        async def complete() -> Any:
            snap = await source.poll()
            names = {c.name for c in snap.containers if c.cpu_history}
            return snap if names >= running and snap.refresh_seconds is not None else None

        snap = await eventually(complete)
        assert source.stream_count == len(running)
        by_name = {c.name: c for c in snap.containers}
        for name in running:
            c = by_name[name]
            info = inspect(name)
            assert c.mem_usage > 0, c
            assert c.pids > 0, c
            assert c.cpu_percent >= 0.0
            assert c.mem_limit == info["HostConfig"]["Memory"], c
            assert 0 < c.mem_percent < 100
            assert c.cpu_limit == pytest.approx(info["HostConfig"]["NanoCpus"] / 1e9)
        assert snap.host_cpus > 0 and snap.host_mem_total > 0
        assert snap.total_mem_usage == sum(c.mem_usage for c in snap.containers)
        assert snap.refresh_seconds is not None and snap.refresh_seconds > 0
        assert source.first_full_refresh_s is not None
        # the history grows with every sample (bounded by settings.stats_history)
        db = stack.container("db")
        before = len(by_name[db].cpu_history)

        async def grew() -> bool:
            snap2 = await source.poll()
            return any(c.name == db and len(c.cpu_history) > before for c in snap2.containers)

        await eventually(grew)
    finally:
        await source.aclose()
    assert source.stream_count == 0
    await eventually(
        lambda: not [t for t in threading.enumerate() if t.name.startswith("stackdeck-stats")]
    )


def _half_cpu_burner(stack: Any, service: str, *, memory: str, seconds: int) -> str:
    """A throw-away container of the project (its label, so the stack's own
    services are not disturbed) spinning at most half a CPU; it ends by itself."""
    name = f"{stack.name}_{service.replace('-', '_')}_{uuid.uuid4().hex[:6]}"
    docker(
        "run", "-d", "--rm", "--name", name, "--cpus", "0.5", "--memory", memory,
        "--label", f"com.docker.compose.project={stack.name}",
        "--label", f"com.docker.compose.service={service}",
        base_image(), "timeout", str(seconds), "sh", "-c", "while :; do :; done",
    )  # fmt: skip
    return name


async def test_stats_cpu_follows_real_load(stack: Any, handle: DockerHandle) -> None:
    """A busy container joins the project: its stream starts and its CPU % rises.

    The load runs in a throw-away container carrying the project's label (so
    the stack's own services are not disturbed), limited to half a CPU, and
    ends by itself.
    """
    source = StatsSource(handle.settings, handle)
    name = _half_cpu_burner(stack, "stackdeck-burner", memory="32m", seconds=60)
    try:
        source.request_relist()

        async def busy() -> Any:
            snap = await source.poll()
            return [c for c in snap.containers if c.name == name and c.cpu_percent > 5.0]

        [burner] = await eventually(busy)
        assert burner.service == "stackdeck-burner"
        assert burner.cpu_percent < 75.0  # capped by --cpus 0.5 (50 % of one core)
        assert burner.cpu_limit == 0.5
        assert burner.mem_limit == 32 * 2**20
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            docker("rm", "-f", name)

    async def gone() -> bool:
        source.request_relist()
        snap = await source.poll()
        return all(c.name != name for c in snap.containers)

    try:
        await eventually(gone)
    finally:
        await source.aclose()


_UNITS = {
    "B": 1,
    "KiB": 2**10,
    "MiB": 2**20,
    "GiB": 2**30,
    "TiB": 2**40,
    "kB": 1e3,
    "MB": 1e6,
    "GB": 1e9,
}


def _bytes(text: str) -> float:
    """``41.2MiB`` (docker stats' MemUsage, 3 significant digits) -> bytes."""
    number = text.rstrip("BKMGTikb")
    return float(number) * _UNITS[text[len(number) :]]


async def test_stats_agree_with_docker_stats(stack: Any, handle: DockerHandle) -> None:
    """The console's CPU % and memory (page cache excluded) are what the
    runbook's ``docker stats`` shows, for every container of the project:
    memory within 3 % or 2 MiB, CPU within 3 points or 15 % (the two read
    samples a moment apart). A busy container at half a CPU makes the CPU
    comparison mean something; a systematic difference (another cache
    figure subtracted, another CPU formula) keeps failing until the deadline."""
    source = StatsSource(handle.settings, handle)
    name = _half_cpu_burner(stack, "stackdeck-cmp", memory="64m", seconds=90)
    misses: list[str] = []
    try:
        source.request_relist()
        running = running_containers(stack)

        async def agree() -> bool:
            snap = await source.poll()
            ours = {c.name: c for c in snap.containers if len(c.cpu_history) >= 2}
            if not running <= set(ours):
                return False
            out = await asyncio.to_thread(
                docker, "stats", "--no-stream", "--format", "{{json .}}", *sorted(running)
            )
            late = {c.name: c for c in (await source.poll()).containers}
            misses.clear()
            for row in map(json.loads, out.splitlines()):
                mine, mine_late = ours[row["Name"]], late.get(row["Name"], ours[row["Name"]])
                cli_cpu = float(row["CPUPerc"].rstrip("%"))
                cli_mem = _bytes(row["MemUsage"].split("/")[0].strip())
                lo_cpu = min(mine.cpu_percent, mine_late.cpu_percent)
                hi_cpu = max(mine.cpu_percent, mine_late.cpu_percent)
                if (
                    not lo_cpu - max(3.0, 0.15 * cli_cpu)
                    <= cli_cpu
                    <= hi_cpu + max(3.0, 0.15 * cli_cpu)
                ):
                    misses.append(
                        f"{row['Name']}: CPU {cli_cpu} % (docker stats) vs {lo_cpu:.2f}-{hi_cpu:.2f} %"
                    )
                lo_mem = min(mine.mem_usage, mine_late.mem_usage)
                hi_mem = max(mine.mem_usage, mine_late.mem_usage)
                slack = max(2 * 2**20, 0.03 * cli_mem)
                if not lo_mem - slack <= cli_mem <= hi_mem + slack:
                    misses.append(
                        f"{row['Name']}: memory {row['MemUsage']} (docker stats) vs {lo_mem}-{hi_mem} B"
                    )
            busy = ours[name].cpu_percent
            if not 25.0 < busy < 75.0:
                misses.append(f"the half-CPU container shows {busy:.1f} %")
            return not misses

        try:
            await eventually(agree, deadline=60, every=1.0)
        except (AssertionError, pytest.fail.Exception) as exc:
            raise AssertionError(f"console and docker stats disagree: {misses}") from exc
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            docker("rm", "-f", name)
        await source.aclose()


# --- health -------------------------------------------------------------------------------


async def test_health_of_every_endpoint(stack: Any) -> None:
    source = HealthSource(settings_for(stack))
    try:
        snap = await source.poll()
        active = stack.env.get("ACTIVE_COLOUR", "blue")
        running = running_containers(stack)
        results = {(r.path, r.target): r for r in snap.results if r.path in HEALTH_PATHS}
        assert len(results) == len(HEALTH_PATHS) * 3
        for path in HEALTH_PATHS:
            through = results[(path, "nginx")]
            assert through.status == 200, through
            assert through.latency_ms is not None and through.latency_ms > 0
            assert through.colour == active
            for colour in ("blue", "green"):
                direct = results[(path, colour)]
                if stack.container(f"backend_{colour}") in running:
                    assert direct.status == 200, direct
                    assert direct.colour == colour
                else:
                    assert direct.status != 200
        assert results[("/api/health", "nginx")].version == stack.env[f"{active.upper()}_VERSION"]

        # a colour nginx cannot reach is asked /api/health only from then on;
        # its other paths repeat that answer (no latency: not measured)
        stopped = [c for c in ("blue", "green") if stack.container(f"backend_{c}") not in running]
        again = {(r.path, r.target): r for r in (await source.poll()).results}
        for colour in stopped:
            first = again[("/api/health", colour)]
            assert first.status in (502, 504) and first.latency_ms is not None, first
            for path in HEALTH_PATHS[1:]:
                assert (again[(path, colour)].status, again[(path, colour)].latency_ms) == (
                    first.status,
                    None,
                )

        # p95 from the metrics: the probes above are requests, so the second
        # scrape has bucket deltas
        async with httpx.AsyncClient(base_url=stack.base_url) as client:
            for _ in range(10):
                await client.get("/api/health")
        snap2 = await source.poll()
        assert snap2.p95_seconds is not None
        # within the histogram's finite buckets (how fast depends on the host's load)
        assert 0 < snap2.p95_seconds <= 60.0
        assert snap2.request_rate is not None and snap2.request_rate > 0
    finally:
        await source.aclose()


async def test_health_reports_the_page_through_nginx_and_per_frontend_colour(
    stack: Any, handle: DockerHandle
) -> None:
    """The web frontend's /version.json through nginx (the page's serving
    colour) and per colour through /direct/frontend_<colour>/: the versions
    the containers carry. A standby frontend colour stopped is not asked."""
    containers = await ContainersSource(handle.settings, handle).poll()
    serving = containers.serving_frontend
    assert serving in ("blue", "green"), containers.serving_frontend
    fe = {c.colour: c for c in containers.containers if c.service.startswith("frontend_")}
    source = HealthSource(settings_for(stack))
    idle = "green" if serving == "blue" else "blue"
    restart = False
    try:
        source.note_containers(containers)
        page = {r.target: r for r in (await source.poll()).results if r.path == FRONTEND_PATH}
        through = page["nginx"]
        assert through.status == 200 and through.latency_ms is not None, through
        assert through.colour == serving
        assert through.version == fe[serving].version, (through, fe[serving])
        for colour, info in fe.items():
            if info.state == "running":
                assert page[colour].status == 200, page[colour]
                assert (page[colour].version, page[colour].colour) == (info.version, colour)
            else:
                assert colour not in page  # stopped on standby: not asked
        if fe.get(idle) is not None and fe[idle].state == "running":
            # the standby colour stopped (as keep_previous_colour=false leaves
            # it): not asked any more, nor counted as a failure
            docker("stop", fe[idle].name)
            restart = True
            source.note_containers(await ContainersSource(handle.settings, handle).poll())
            assert source.frontend_skipped == {idle}
            again = {r.target for r in (await source.poll()).results if r.path == FRONTEND_PATH}
            assert again == {"nginx", serving}
    finally:
        if restart:
            docker("start", fe[idle].name)
        await source.aclose()


async def test_health_reports_an_unreachable_nginx(stack: Any) -> None:
    # a port nothing listens on: every result says so, and the poll raises
    # with the failed snapshot attached (the monitor shows it and marks the source down)
    from console.core.sources.health import HealthUnreachable

    source = HealthSource(settings_for(stack, base_url="http://127.0.0.1:9", request_timeout=2.0))
    try:
        with pytest.raises(HealthUnreachable) as info:
            await source.poll()
        assert all(r.status is None and r.error for r in info.value.snapshot.results)
    finally:
        await source.aclose()


# --- postgres -----------------------------------------------------------------------------


async def test_slow_query_produced_by_the_test_appears(stack: Any) -> None:
    # pg_stat_statements folds every ``SELECT pg_sleep($1)`` into one entry
    # (constants and comments do not count), so compare before and after.
    source = PostgresSource(settings_for(stack, slow_queries=25))

    # only this statement's entries (one per user and database: other tests
    # sleep too, and run statements that start the same way, such as
    # ``SELECT pg_sleep($1), md5($2::text)``)
    only_sleep = re.compile(r"^SELECT pg_sleep\(\$1\)\s*(/\*.*\*/)?\s*$")

    def entries(snap: DatabaseSnapshot) -> list[Any]:
        return [q for q in snap.slow_queries if only_sleep.match(q.query)]

    try:
        before = entries(await source.poll())
        conn = await asyncpg.connect(dsn=stack.pg_dsn, password=stack.env.get("POSTGRES_PASSWORD"))
        try:
            for _ in range(3):
                await conn.execute("SELECT pg_sleep(0.3)")
        finally:
            await conn.close()
        snap = await source.poll()
        found = entries(snap)
        assert found, [q.query[:80] for q in snap.slow_queries]
        assert sum(q.calls for q in found) >= sum(q.calls for q in before) + 3
        assert sum(q.total_ms for q in found) - sum(q.total_ms for q in before) >= 3 * 300.0 * 0.99
        after = found[0]
        assert after.mean_ms >= 100.0
        # ranked by mean time: slower than everything listed after it
        index = snap.slow_queries.index(after)
        assert all(q.mean_ms <= after.mean_ms for q in snap.slow_queries[index + 1 :])
        assert snap.connections >= 1
        assert snap.max_connections >= snap.connections
        assert snap.db_size_bytes > 0
        assert snap.schema_version
        assert snap.tables
        assert snap.warnings == []
    finally:
        await source.aclose()


async def test_long_running_session_is_listed(stack: Any) -> None:
    conn = await asyncpg.connect(dsn=stack.pg_dsn, password=stack.env.get("POSTGRES_PASSWORD"))
    source = PostgresSource(settings_for(stack))
    sleeper = asyncio.create_task(conn.execute("SELECT pg_sleep(5) /* stackdeck-session-probe */"))
    try:

        async def listed() -> Any:
            snap = await source.poll()
            return [s for s in snap.sessions if "stackdeck-session-probe" in s.query]

        [session] = await eventually(listed, deadline=5)
        assert session.state == "active"
        assert session.duration_s is not None and session.duration_s >= 0
    finally:
        sleeper.cancel()
        await source.aclose()
        conn.terminate()


# --- redis quotas -----------------------------------------------------------------------------


async def test_quota_consumed_by_the_test_appears(stack: Any) -> None:
    settings = settings_for(stack)
    spec = keys.provider_table(settings.newsapi_daily_limit)[
        "newsapi"
    ]  # a day window: no rollover mid-test
    source = QuotaSource(settings)
    client = aioredis.Redis.from_url(
        f"unix://{stack.redis_socket}", password=stack.env["REDIS_PASSWORD"]
    )
    try:
        before = {p.provider: p for p in (await source.poll()).providers}
        key = keys.quota_key_for(spec)
        await client.incrby(key, 7)
        await client.expire(key, keys.quota_ttl(spec), nx=True)
        try:
            after = {p.provider: p for p in (await source.poll()).providers}
            assert after["newsapi"].used >= before["newsapi"].used + 7
            assert after["newsapi"].limit == spec.limit
            assert after["newsapi"].resets_at == keys.resets_at(spec.window_seconds)
            assert after["newsapi"].burn_per_hour is not None and after["newsapi"].burn_per_hour > 0
            assert set(after) == set(keys.PROVIDER_ORDER)
        finally:
            await client.decrby(key, 7)

        await client.set(keys.EMERGENCY_KEY, "1", ex=120)
        try:
            snap = await source.poll()
            assert snap.emergency_limit is True
            assert snap.emergency_ttl_s is not None and 0 < snap.emergency_ttl_s <= 120
        finally:
            await client.delete(keys.EMERGENCY_KEY)
        assert (await source.poll()).emergency_limit is False
    finally:
        await client.aclose()
        await source.aclose()


# --- cost -------------------------------------------------------------------------------------


async def test_cost_through_nginx(stack: Any) -> None:
    source = CostSource(settings_for(stack))
    try:
        snap = await source.poll()
        assert snap.daily_projection > 0
        assert snap.month_to_date >= 0
        assert snap.month_end_projection >= snap.month_to_date
        assert snap.monthly_budget > 0
        assert "compute" in snap.components
        assert snap.daily_history
        # Issue 16: the chart's days are the ones the platform recorded as they
        # happened (its cost_days table), never its 30 modelled days.
        conn = await asyncpg.connect(stack.pg_dsn, timeout=10)
        try:
            rows = await conn.fetch("SELECT day, cost_usd FROM cost_days ORDER BY day")
        finally:
            await conn.close()
        record = {r["day"]: r["cost_usd"] for r in rows}
        today = snap.taken_at.astimezone(UTC).date()
        assert snap.recorded_days[-1].day == today and snap.recorded_days[0].partial
        assert snap.recorded_days[0].day == min(record)
        for day in snap.recorded_days:
            assert (day.cost is None) == (day.day not in record)
        assert snap.recorded_days[-1].cost == pytest.approx(record[today], abs=0.01)
    finally:
        await source.aclose()


# --- the monitor --------------------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.items: list[tuple[str, Any]] = []

    def __call__(self, kind: str, payload: Any) -> None:
        self.items.append((kind, payload))

    def kinds(self) -> set[str]:
        return {k for k, _ in self.items}

    def states(self, name: str) -> list[SourceState]:
        return [p for k, p in self.items if k == "source" and p.name == name]


async def test_monitor_runs_every_source(stack: Any) -> None:
    rec = Recorder()
    monitor = Monitor(settings_for(stack), rec)
    try:
        wanted = {
            "containers",
            "stats",
            "health",
            "database",
            "quotas",
            "cost",
            "events",
            "alerts",
            "history",
            "source",
        }
        await eventually(lambda: rec.kinds() >= wanted)
        await eventually(lambda: every_source_ok(monitor))
        assert set(monitor.latest) >= wanted - {"source"}
    finally:
        await monitor.stop()

    # A stream thread still waiting for the daemon's first answer ends as soon
    # as it comes (its stop flag is set); none outlives that.
    def leftovers() -> list[str]:
        return [t.name for t in threading.enumerate() if t.name.startswith("stackdeck-")]

    await eventually(lambda: not leftovers())


async def test_events_are_streamed(stack: Any, handle: DockerHandle) -> None:
    source = EventsSource(handle.settings, handle)
    try:
        await source.poll()
        market = stack.container("market-sim")
        stack.compose("restart", "market-sim")

        async def restarted() -> Any:
            snap = await source.poll()
            if snap is None:
                return None
            live = [e for e in snap.events if e.container == market and not e.before_start]
            return {e.action for e in live} >= {"die", "start"}

        await eventually(restarted)
    finally:
        await source.aclose()


async def test_events_before_the_start_are_recalled_once_the_engine_forgot_them(
    stack: Any, handle: DockerHandle
) -> None:
    """A service restarted from another terminal (the ``restart`` operation,
    audited) before the console starts is on its timeline at start, marked as
    before the start, even once the engine's 256-event buffer no longer holds
    the restart (proven below by asking the engine)."""
    market = stack.container("market-sim")
    t0 = time.time()
    env = stack.proc_env(PYTHONPATH=str(stack.repo))
    env.pop("STACKDECK_READ_ONLY", None)
    done = await asyncio.to_thread(
        subprocess.run,
        stack.cli_argv("restart", "market-sim"),
        env=env,
        cwd=stack.repo,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    started = inspect(market)["State"]["StartedAt"]

    await asyncio.to_thread(forget_in_the_engine, handle.api, market, t0)

    # Something the buffer does still hold from before the start: the
    # timeline replays it from the engine, marked as well.
    docker("pause", market)
    docker("unpause", market)

    source = EventsSource(handle.settings, handle)
    try:
        snap = await source.poll()
        assert snap is not None
        on_screen = {(e.container, e.action) for e in snap.events}
        assert {(market, "die"), (market, "start"), ("stackdeck", "restart")} <= on_screen, (
            snap.events
        )
        assert snap.started_at is not None and snap.since is not None
        assert (snap.started_at - snap.since).total_seconds() == source.history_seconds
        earlier = {(e.container, e.action): e for e in snap.events if e.before_start}
        assert {(market, "die"), (market, "start")} <= set(earlier), snap.events
        start = earlier[(market, "start")]
        assert start.at.timestamp() >= t0 and start.at < snap.started_at
        assert start.at == parse_docker_time(started)
        restart = earlier[("stackdeck", "restart")]
        assert restart.origin == "audit" and (restart.detail or "").startswith("market-sim by ")
        assert restart.at <= earlier[(market, "die")].at
        assert [e.at for e in snap.events] == sorted(e.at for e in snap.events)

        async def replayed() -> Any:
            nonlocal snap
            snap = await source.poll() or snap
            return [e for e in snap.events if e.container == market and e.action == "unpause"]

        [unpause] = await eventually(replayed)
        assert unpause.origin == "engine" and unpause.before_start
        assert all(e.before_start == (e.at < snap.started_at) for e in snap.events), snap.events
    finally:
        await source.aclose()


@pytest.mark.destructive
async def test_database_down_then_back_without_restarting_the_monitor(stack: Any) -> None:
    rec = Recorder()
    monitor = Monitor(settings_for(stack), rec)
    stopped = False
    try:
        await eventually(lambda: every_source_ok(monitor))
        await eventually(lambda: "database" in monitor.latest)
        good = monitor.latest["database"]

        stack.compose("stop", "db")
        stopped = True
        down = await eventually(lambda: [s for s in rec.states("postgres") if not s.ok])
        state = down[0]
        assert state.last_ok is not None
        assert state.last_error
        assert state.failures >= 1 and state.next_retry is not None
        # the last good snapshot is kept (the panel shows it as stale)
        kept = monitor.latest["database"]
        assert isinstance(kept, DatabaseSnapshot)
        assert good.taken_at <= kept.taken_at <= state.last_ok
        # every other source carries on while the database stays down: wait
        # until postgres has failed twice more since ``kept`` was read (two
        # polls that could have replaced it) and the others have each sent a
        # fresh snapshot (or postgres is back, which the checks below refuse)
        others = ("containers", "stats", "quotas")
        sent = {kind: sum(k == kind for k, _ in rec.items) for kind in others}
        failed = monitor.states["postgres"].failures

        def carried_on() -> bool:
            pg = monitor.states["postgres"]
            return pg.ok or (
                pg.failures >= failed + 2
                and all(sum(k == kind for k, _ in rec.items) > sent[kind] for kind in others)
            )

        await eventually(carried_on)
        states = monitor.states
        assert not states["postgres"].ok
        assert states["postgres"].failures >= 2
        for name in ("engine", "stats", "redis", "events"):
            assert states[name].ok, states[name]
        assert monitor.latest["database"] is kept

        stack.compose("start", "db")
        stopped = False
        n_before = len([p for k, p in rec.items if k == "database"])
        await eventually(lambda: monitor.states["postgres"].ok, deadline=120)
        await eventually(lambda: len([p for k, p in rec.items if k == "database"]) > n_before)
        recovered = monitor.latest["database"]
        assert recovered.taken_at > state.last_ok
        assert recovered.max_connections > 0
        # the engine saw the database container die and start again
        events = monitor.latest["events"]
        actions = {e.action for e in events.events if e.container == stack.container("db")}
        assert {"die", "start"} <= actions
    finally:
        if stopped:
            stack.compose("start", "db")
        await monitor.stop()
        stack.compose("up", "-d", "--wait", "--wait-timeout", "120", "db", check=False)


# --- each source on its own -------------------------------------------------------------------


class UnixProxy:
    """A unix-socket proxy in front of a real socket that the test can cut and
    restore: the backend "goes away" (connections drop, new ones are refused)
    without touching the daemon or the stack."""

    def __init__(self, target: str, path: str) -> None:
        self.target = target
        self.path = path
        self.server: asyncio.AbstractServer | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_unix_connection(self.target)
        except OSError:
            writer.close()
            return
        self.writers.update({writer, up_writer})
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        self.writers.difference_update({writer, up_writer})

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        self.server = await asyncio.start_unix_server(self._handle, path=self.path)

    async def cut(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        for writer in list(self.writers):
            writer.close()
        self.writers.clear()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


async def test_docker_daemon_away_and_back(stack: Any, tmp_path: Any) -> None:
    """The engine sources fail alone while the Docker API is unreachable, keep
    their last snapshots, and recover by themselves when it returns."""
    proxy = UnixProxy("/var/run/docker.sock", str(tmp_path / "docker.sock"))
    await proxy.start()
    rec = Recorder()
    monitor = Monitor(settings_for(stack, docker_host=f"unix://{proxy.path}"), rec)
    try:
        await eventually(lambda: every_source_ok(monitor))
        await eventually(lambda: {"containers", "stats"} <= set(monitor.latest))
        await proxy.cut()

        def engine_down() -> bool:
            states = monitor.states
            return not states["engine"].ok and not states["stats"].ok

        await eventually(engine_down)
        kept = monitor.latest["containers"]
        for name in ("health", "postgres", "redis"):
            assert monitor.states[name].ok, monitor.states[name]
        assert monitor.states["engine"].last_error

        await proxy.start()
        await eventually(lambda: all(monitor.states[n].ok for n in ("engine", "stats", "events")))
        await eventually(lambda: monitor.latest["containers"] is not kept)
        await eventually(
            lambda: len(monitor.latest["stats"].containers) == len(running_containers(stack))
        )
    finally:
        await monitor.stop()
        await proxy.cut()


async def test_redis_away_and_back(stack: Any, tmp_path: Any) -> None:
    proxy = UnixProxy(str(stack.redis_socket), str(tmp_path / "redis.sock"))
    await proxy.start()
    rec = Recorder()
    monitor = Monitor(settings_for(stack, redis_url=f"unix://{proxy.path}"), rec)
    try:
        await eventually(lambda: every_source_ok(monitor))
        await eventually(lambda: "quotas" in monitor.latest)
        await proxy.cut()
        await eventually(lambda: not monitor.states["redis"].ok)
        kept = monitor.latest["quotas"]
        for name in ("engine", "stats", "postgres", "health"):
            assert monitor.states[name].ok, monitor.states[name]
        await proxy.start()
        await eventually(lambda: monitor.states["redis"].ok)
        await eventually(lambda: monitor.latest["quotas"] is not kept)
    finally:
        await monitor.stop()
        await proxy.cut()


async def test_hung_docker_daemon_is_a_failing_source_not_a_hang(stack: Any, tmp_path: Any) -> None:
    """A Docker socket that accepts and never answers: the engine sources time
    out and report it; the others carry on; stop() still returns."""
    path = str(tmp_path / "hung.sock")
    held: list[asyncio.StreamWriter] = []

    async def accept_and_hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_unix_server(accept_and_hold, path=path)
    rec = Recorder()
    monitor = Monitor(settings_for(stack, docker_host=f"unix://{path}", request_timeout=2.0), rec)
    try:

        def settled() -> bool:
            states = monitor.states
            return all(
                n in states for n in ("engine", "stats", "events", "postgres", "redis", "health")
            )

        await eventually(settled)
        states = monitor.states
        for name in ("engine", "stats", "events"):
            assert not states[name].ok, states[name]
            assert states[name].last_error
        for name in ("postgres", "redis", "health"):
            assert states[name].ok, states[name]
    finally:
        await asyncio.wait_for(monitor.stop(), timeout=30)
        server.close()
        for writer in held:
            writer.close()
