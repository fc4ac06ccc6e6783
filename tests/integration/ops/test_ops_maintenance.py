"""Maintenance operations against the real stack: backup, VACUUM, cache
flush, emergency limit, scale, the lock between two operators, audit."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
import redis

from tests.integration.ops.ops_helpers import REPO, cli_env, health, run_cli

pytestmark = pytest.mark.stack


@pytest.fixture
def rds(stack: Any) -> Any:
    client = redis.Redis(
        unix_socket_path=str(stack.redis_socket),
        password=stack.env["REDIS_PASSWORD"],
        decode_responses=True,
    )
    yield client
    client.close()


def _pg(stack: Any, sql: str, *args: Any) -> Any:
    async def go() -> Any:
        conn = await asyncpg.connect(stack.pg_dsn)
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()

    return asyncio.run(go())


def test_preflight_passes_and_says_what_it_checked(stack: Any) -> None:
    r = run_cli(stack, "preflight")
    steps = set(r.steps())
    for step in (
        "engine",
        "compose",
        "cpu",
        "memory",
        "disk",
        "database",
        "timescaledb",
        "env",
        "provider-keys",
        "backups",
        "migrations",
        "lock",
    ):
        assert step in steps, (step, r.text())
    assert "timescaledb" in r.steps("ok"), r.text()
    # The test machine meets every requirement (2+ cores, 4+ GiB, 10+ GB free,
    # a healthy test stack): warnings are allowed, a failed check is not.
    assert not r.steps("fail"), f"checks failed: {r.steps('fail')}\n{r.text()}"
    assert r.rc == 0, r.text()
    assert r.final["status"] == "done", r.text()
    assert r.final["message"].startswith("pre-deployment checks passed"), r.text()


@contextlib.contextmanager
def _lock_holder(stack: Any, user: str) -> Iterator[subprocess.Popen[str]]:
    """A live process holding the deploy lock as ``user``; SIGKILLed on
    leaving, so the lock stays behind, stale (killed while holding it)."""
    code = textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        from console.core.ops.context import Operator
        from console.core.ops.lock import DeployLock, make_record
        op = Operator.current({{"USER": {user!r}, "SSH_CLIENT": "198.51.100.4 40000 22"}})
        DeployLock(Path({str(stack.state_dir / "lock")!r})).acquire(make_record(op, "deploy", "held-by-test"))
        print("held", flush=True)
        time.sleep(300)
        """
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()


def _stale_lock(stack: Any, user: str) -> None:
    """A deploy lock whose holder process is dead."""
    with _lock_holder(stack, user):
        pass


def test_preflight_fails_on_a_stale_deploy_lock(stack: Any) -> None:
    """The other outcome of preflight, produced on purpose: a stale lock fails it."""
    _stale_lock(stack, "preflight-test")
    try:
        r = run_cli(stack, "preflight")
        assert r.rc == 1, r.text()
        assert [s for s in r.steps("fail") if s != "result"] == ["lock"], r.text()
        assert r.final["data"]["code"] == "failed", r.text()
        assert "pre-deployment checks failed: lock" in r.final["message"], r.text()
    finally:
        br = run_cli(stack, "lock", "break")
        assert br.rc == 0, br.text()


def test_backup_writes_dump_checksum_and_metadata(stack: Any) -> None:
    r = run_cli(stack, "backup", "--reason", "test")
    assert r.rc == 0, r.text()
    data = r.final["data"]
    dump = stack.state_dir / "backups" / f"{data['backup_id']}.dump"
    meta = json.loads(dump.with_suffix(".json").read_text())
    assert dump.is_file() and dump.stat().st_size == meta["size"] > 0
    assert hashlib.sha256(dump.read_bytes()).hexdigest() == meta["sha256"] == data["sha256"]
    assert dump.read_bytes()[:5] == b"PGDMP"  # pg_dump custom format
    assert meta["reason"] == "test" and meta["database"] == "investment_db"
    assert meta["schema_revision"]
    assert oct(dump.stat().st_mode & 0o777) == "0o640"
    assert not list((stack.state_dir / "backups").glob("*.partial"))


def test_vacuum_completes_and_last_vacuum_changes(stack: Any) -> None:
    table = "users"
    before = _pg(stack, "SELECT last_vacuum FROM pg_stat_user_tables WHERE relname = $1", table)[0][
        0
    ]
    r = run_cli(stack, "vacuum", table)
    assert r.rc == 0, r.text()
    after = _pg(stack, "SELECT last_vacuum FROM pg_stat_user_tables WHERE relname = $1", table)[0][
        0
    ]
    assert after is not None and after != before
    assert any(e["step"] == "vacuum" and e["status"] == "ok" for e in r.events)


def test_vacuum_warns_about_long_transactions(stack: Any) -> None:
    async def scenario() -> list[dict[str, Any]]:
        from console.core.ops import run_op

        blocker = await asyncpg.connect(stack.pg_dsn)
        try:
            tx = blocker.transaction()
            await tx.start()
            await blocker.execute("SELECT count(*) FROM users")
            await asyncio.sleep(1.5)
            ctx = stack.op_context()
            events = [e async for e in run_op("vacuum", ctx, tables=["users"], long_tx_seconds=1)]
            await tx.rollback()
            return [e.model_dump() for e in events]
        finally:
            await blocker.close()

    events = asyncio.run(scenario())
    warns = [e for e in events if e["status"] == "warn" and e["step"] == "check"]
    assert warns and "VACUUM cannot remove tuples" in warns[0]["message"]
    assert events[-1]["status"] == "done"


def test_vacuum_cancel_cancels_the_server_side_vacuum(stack: Any) -> None:
    """A VACUUM stuck behind a lock is cancelled on the server when the
    operation is cancelled (pg_cancel_backend), not left waiting."""

    async def scenario() -> tuple[list[str], int, int]:
        from console.core.ops import run_op

        blocker = await asyncpg.connect(stack.pg_dsn)
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute("LOCK TABLE users IN SHARE UPDATE EXCLUSIVE MODE")
        try:
            ctx = stack.op_context()
            steps: list[str] = []
            gen = run_op("vacuum", ctx, tables=["users"])
            async for e in gen:
                steps.append(f"{e.step}:{e.status}")
                if e.step == "vacuum" and e.status == "start":
                    break
            conn = await asyncpg.connect(stack.pg_dsn)
            try:
                sql = (
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'stackdeck-ops' "
                    "AND query ILIKE 'VACUUM%' AND state = 'active'"
                )
                waiting = 0
                for _ in range(50):  # the VACUUM is queued behind our lock
                    waiting = int(await conn.fetchval(sql))
                    if waiting:
                        break
                    await asyncio.sleep(0.1)
                await gen.aclose()  # what the TUI's cancel does
                left = int(await conn.fetchval(sql))
            finally:
                await conn.close()
            return steps, waiting, left
        finally:
            await tx.rollback()
            await blocker.close()

    steps, waiting, left = asyncio.run(scenario())
    assert "vacuum:start" in steps
    assert waiting == 1
    assert left == 0


@pytest.mark.destructive
def test_cache_flush_removes_cache_keys_and_keeps_quota_counters(stack: Any, rds: Any) -> None:
    cache_keys = [f"cache:opstest:{i}" for i in range(25)]
    for k in cache_keys:
        rds.set(k, "x", ex=600)
    quota = "quota:polygon:minute:999999999"
    rds.set(quota, 3, ex=600)
    emergency_before = rds.exists("emergency_rate_limit")
    stats_before = rds.exists("stats:cache:hits")

    dry = run_cli(stack, "cache", "flush", "--dry-run")
    assert dry.rc == 0, dry.text()
    counted = dry.final["data"]["keys"]
    assert counted >= 25
    assert all(rds.exists(k) for k in cache_keys)  # dry run deletes nothing

    r = run_cli(stack, "cache", "flush")
    assert r.rc == 0, r.text()
    assert r.final["data"]["deleted"] >= 25
    assert not any(rds.exists(k) for k in cache_keys)
    assert rds.get(quota) == "3"
    assert rds.exists("emergency_rate_limit") == emergency_before
    assert rds.exists("stats:cache:hits") == stats_before
    rds.delete(quota)


@pytest.mark.destructive
def test_flushdb_with_typed_confirmation_keeps_quota_counters(stack: Any, rds: Any) -> None:
    quota = "quota:finnhub:minute:999999998"
    rds.set(quota, 7, ex=900)
    rds.set("cache:opstest:full", "x")
    rds.set("opstest:other", "y")
    r = run_cli(stack, "cache", "flush", "--all", "--confirm", stack.container("redis"))
    assert r.rc == 0, r.text()
    assert rds.get(quota) == "7" and 0 < rds.ttl(quota) <= 900
    assert not rds.exists("opstest:other") and not rds.exists("cache:opstest:full")
    rds.delete(quota)
    assert health(stack)["_status"] == 200


@pytest.mark.destructive
def test_emergency_limit_on_with_ttl_then_off(stack: Any, rds: Any) -> None:
    r = run_cli(stack, "emergency-limit", "on", "--ttl", "120")
    assert r.rc == 0, r.text()
    assert rds.get("emergency_rate_limit") == "1" and 0 < rds.ttl("emergency_rate_limit") <= 120
    r = run_cli(stack, "emergency-limit", "off")
    assert r.rc == 0, r.text()
    assert not rds.exists("emergency_rate_limit")


@pytest.mark.destructive
def test_scale_worker_to_zero_and_back(stack: Any) -> None:
    def state() -> str:
        return subprocess.run(
            ["docker", "inspect", "-f", "{{.State.Status}}", stack.container("worker")],
            capture_output=True,
            text=True,
        ).stdout.strip()

    r = run_cli(stack, "scale", "worker=0")
    assert r.rc == 0, r.text()
    assert state() in ("exited", "")
    assert health(stack)["_status"] == 200  # the stack stays healthy without the worker
    r = run_cli(stack, "scale", "worker=1", timeout=400)
    assert r.rc == 0, r.text()
    assert state() == "running"
    # the worker is confirmed by its own heartbeat (console/core/ops/steps/worker.py)
    assert any(e["step"] == "heartbeats" and e["status"] == "ok" for e in r.events), r.text()


def test_second_operator_is_refused_with_the_holder_named(stack: Any) -> None:
    """Another process holds the lock: a write is refused (exit 3) naming it;
    once the holder dies, the lock is stale until broken explicitly."""
    with _lock_holder(stack, "mallory") as holder:
        r = run_cli(stack, "backup")
        assert r.rc == 3, r.text()
        assert "deploy by mallory from 198.51.100.4" in r.final["message"]
        assert f"pid {holder.pid}" in r.final["message"]
        shown = subprocess.run(
            [sys.executable, "-m", "console", "--stack", stack.name, "lock", "show"],
            env=cli_env(stack),
            cwd=REPO,
            capture_output=True,
            text=True,
        ).stdout
        assert "held: deploy by mallory" in shown
        br = run_cli(stack, "lock", "break")
        assert br.rc == 3 and "live process" in br.final["message"], br.text()
    r = run_cli(stack, "backup")
    assert r.rc == 3 and "stale deploy lock" in r.final["message"], r.text()
    st = run_cli(stack, "status")
    status = json.loads(st.stdout)
    assert status["lock"]["stale"] is True and status["lock"]["holder"]["user"] == "mallory"
    assert any("STALE deploy lock" in line for line in status["summary"])
    br = run_cli(stack, "lock", "break")
    assert br.rc == 0 and "mallory" in br.final["message"], br.text()
    assert json.loads(run_cli(stack, "status").stdout)["lock"]["stale"] is False


def test_audit_log_has_identity_and_no_secrets(stack: Any) -> None:
    env = cli_env(stack, SSH_CONNECTION="192.0.2.55 52000 10.0.0.1 22", LOGNAME="oncall-ann")
    env.pop("SSH_CLIENT", None)
    env.pop("SUDO_USER", None)
    r = run_cli(stack, "emergency-limit", "off", env=env)
    assert r.rc == 0, r.text()
    text = (stack.state_dir / "audit.log").read_text()
    lines = [json.loads(x) for x in text.splitlines() if x.strip()]
    mine = [x for x in lines if x.get("op") == "emergency-limit" and x.get("user") == "oncall-ann"]
    assert [x["event"] for x in mine[-2:]] == ["start", "end"]
    assert mine[-1]["ssh_client"] == "192.0.2.55" and mine[-1]["result"] == "ok"
    for key, value in stack.env.items():
        if any(w in key for w in ("PASSWORD", "SECRET", "TOKEN")) and len(value) >= 8:
            assert value not in text, f"{key} leaked into the audit log"
            assert value not in (stack.state_dir / "deployment.log").read_text()


def test_migrate_with_nothing_pending(stack: Any) -> None:
    r = run_cli(stack, "migrate")
    assert r.rc == 0, r.text()
    assert r.final["message"] == "schema is up to date; nothing to do", r.text()
    assert "migrate" not in r.steps() and "backup" not in r.steps(), r.text()


def test_migrate_with_one_pending_backs_up_and_applies_it(stack: Any) -> None:
    """The database one revision behind (``alembic_version`` set back to the
    one before the head; every migration after 0001 is ``CREATE ... IF NOT
    EXISTS``, so re-applying the head loses nothing): migrate takes a backup,
    then upgrades to the head."""
    head = _pg(stack, "SELECT version_num FROM alembic_version")[0][0]
    assert head != "0001", "the test needs a head after 0001"
    behind = f"{int(head) - 1:04d}"
    _pg(stack, "UPDATE alembic_version SET version_num = $1", behind)
    try:
        r = run_cli(stack, "migrate")
        assert r.rc == 0, r.text()
        assert r.final["message"] == "migrations applied", r.text()
        assert "backup" in r.steps("ok"), r.text()
        assert "migrate" in r.steps("ok"), r.text()
        assert _pg(stack, "SELECT version_num FROM alembic_version")[0][0] == head
    finally:
        _pg(stack, "UPDATE alembic_version SET version_num = $1", head)


def test_cache_warm_fills_the_price_cache(stack: Any, rds: Any) -> None:
    r = run_cli(stack, "cache", "warm", "--symbols", "AAPL,MSFT")
    assert r.rc == 0, r.text()
    assert rds.exists("cache:price:AAPL") and rds.exists("cache:price:MSFT")


@pytest.mark.destructive
def test_restart_one_service_waits_until_healthy(stack: Any) -> None:
    def started_at() -> str:
        return subprocess.run(
            ["docker", "inspect", "-f", "{{.State.StartedAt}}", stack.container("market-sim")],
            capture_output=True,
            text=True,
        ).stdout.strip()

    before = started_at()
    r = run_cli(stack, "restart", "market-sim")
    assert r.rc == 0, r.text()
    assert started_at() != before
    assert any(e["step"] == "wait-healthy" and e["status"] == "ok" for e in r.events)
