"""The stack from nothing: set-up brings a brand-new project up, every service
becomes healthy, the runbook's post-deployment verification answers as it
should through nginx, and a second set-up run changes nothing.

It uses a project of its own (``sdfresh``) with no volumes and no state, so
"from nothing" holds even when the suite's main stack is already up; images are
shared (the first set-up of the run built them).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest

from console.core.config import read_env_file
from console.core.ops.context import SERVICES as ALL_SERVICES
from console.core.stack import StackNames, published_ports
from tests.conftest import REPO, Stack

pytestmark = pytest.mark.stack

FRESH = "sdfresh"
PORT = 18099
SERVICES = set(ALL_SERVICES)
"""Every service the console knows of: the stack runs exactly these."""
# Published on 127.0.0.1 only: nginx for users, and the monitoring UIs
# (HTTP_PORT + 10000 / 12000 / 14000 when .env does not set them: README,
# console/core/stack.facts).
PUBLISHED = {
    "nginx": PORT,
    "prometheus": PORT + 10000,
    "alertmanager": PORT + 12000,
    "alert_sink": PORT + 14000,
}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # what the shell has of the suite's stack must not leak into this one:
    # its folders, its monitoring and HTTPS ports (derived from HTTP_PORT here)
    for k in ("RUN_DIR", "STACKDECK_STATE_DIR", *published_ports({}, PORT)):
        env.pop(k, None)
    env.update(STACK_NAME=FRESH, HTTP_PORT=str(PORT))
    return env


def _setup() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(REPO / "scripts" / "setup.sh")],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )


def _down() -> None:
    subprocess.run(
        ["bash", str(REPO / "scripts" / "compose.sh"), "down", "-v", "--remove-orphans", "-t", "5"],
        env=_env(),
        capture_output=True,
        timeout=300,
    )
    shutil.rmtree(StackNames(FRESH).state_dir, ignore_errors=True)
    shutil.rmtree(StackNames(FRESH).run_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def fresh() -> Iterator[tuple[Stack, subprocess.CompletedProcess[str], float]]:
    if (StackNames(FRESH).state_dir / "deploy.env").exists():
        _down()
    t0 = time.monotonic()
    first = _setup()
    elapsed = time.monotonic() - t0
    stack = Stack(
        name=FRESH,
        http_port=PORT,
        run_dir=StackNames(FRESH).run_dir,
        state_dir=StackNames(FRESH).state_dir,
    )
    stack.reload_env()
    try:
        yield stack, first, elapsed
    finally:
        _down()


def _containers(project: str) -> dict[str, dict[str, str]]:
    out = subprocess.run(
        [
            "docker",
            "ps",
            "-a",
            "--filter",
            f"label=com.docker.compose.project={project}",
            "--format",
            '{{.ID}}|{{.Label "com.docker.compose.service"}}|{{.Names}}|{{.Status}}',
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    rows = {}
    for line in out:
        cid, service, name, status = line.split("|", 3)
        rows[service] = {"id": cid, "name": name, "status": status}
    return rows


def test_setup_from_nothing_brings_every_service_up_healthy(fresh) -> None:
    _stack, first, _elapsed = fresh
    assert first.returncode == 0, first.stderr[-3000:]
    rows = _containers(FRESH)
    assert set(rows) == SERVICES
    for service, row in rows.items():
        assert "(healthy)" in row["status"], f"{service}: {row['status']}"
    # The runbook's container names.
    assert rows["db"]["name"] == f"{FRESH}_db_prod"
    assert rows["redis"]["name"] == f"{FRESH}_cache_prod"


def test_only_nginx_and_the_monitoring_uis_are_published_and_only_on_loopback(fresh) -> None:
    for service, row in _containers(FRESH).items():
        ports = subprocess.run(
            ["docker", "port", row["id"]], capture_output=True, text=True, check=True
        ).stdout.split()
        if service in PUBLISHED:
            assert f"127.0.0.1:{PUBLISHED[service]}" in ports, (service, ports)
            assert not any(p.startswith("0.0.0.0") or p.startswith("[::]") for p in ports)
        else:
            assert ports == [], f"{service} publishes {ports}"


def test_runbook_post_deployment_verification(fresh) -> None:
    """The runbook's 'Post-Deployment Verification' and 'Cost Management' commands."""
    stack, _, _ = fresh
    with httpx.Client(base_url=stack.base_url, timeout=15) as http:
        health = http.get("/api/health")
        assert health.status_code == 200
        body = health.json()
        assert body["status"] == "healthy"
        assert body["version"] == "v1.0.0"
        assert body["colour"] in ("blue", "green")
        for sub in ("database", "cache", "external-apis"):
            r = http.get(f"/api/health/{sub}")
            assert r.status_code == 200, (sub, r.text)

        prices = http.get("/api/stocks/prices", params={"symbols": "AAPL"})
        assert prices.status_code == 200, prices.text
        assert "AAPL" in prices.text

        login = http.post(
            "/api/auth/login",
            json={
                "username": stack.env.get("TEST_USERNAME", "test"),
                "password": stack.env["TEST_PASSWORD"],
            },
        )
        assert login.status_code == 200, login.text
        assert login.json().get("access_token")

        cost = http.get("/api/metrics/cost").json()
        assert isinstance(cost["daily_projection"], (int, float))
        assert cost["monthly_budget"] == 50
        usage = http.get("/api/metrics/api-usage")
        assert usage.status_code == 200
        assert "polygon" in usage.text.lower()
        cache = http.get("/api/metrics/cache").json()
        assert 0.0 <= cache["hit_rate"] <= 1.0

    # Database and cache, the runbook's way.
    db = stack.container("db")
    ready = subprocess.run(
        ["docker", "exec", db, "pg_isready", "-U", "postgres"], capture_output=True, text=True
    )
    assert ready.returncode == 0, ready.stdout + ready.stderr
    version = subprocess.run(
        [
            "docker",
            "exec",
            db,
            "psql",
            "-U",
            "postgres",
            "-d",
            "investment_db",
            "-tAc",
            "SELECT version FROM schema_migrations ORDER BY version DESC LIMIT 1;",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    current = subprocess.run(
        ["docker", "exec", stack.container("backend_blue"), "python3", "-m", "alembic", "current"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert version and version in current and "(head)" in current
    ext = subprocess.run(
        [
            "docker",
            "exec",
            db,
            "psql",
            "-U",
            "postgres",
            "-d",
            "investment_db",
            "-tAc",
            "SELECT string_agg(extname, ',' ORDER BY extname) FROM pg_extension",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "timescaledb" in ext and "pg_stat_statements" in ext
    pong = subprocess.run(
        ["docker", "exec", stack.container("redis"), "redis-cli", "ping"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert pong == "PONG"


def test_redis_requires_a_password(fresh) -> None:
    stack, _, _ = fresh
    out = subprocess.run(
        [
            "docker",
            "exec",
            "-e",
            "REDISCLI_AUTH=",
            stack.container("redis"),
            "redis-cli",
            "-h",
            "127.0.0.1",
            "ping",
        ],
        capture_output=True,
        text=True,
    )
    assert "NOAUTH" in (out.stdout + out.stderr)


def test_second_setup_run_changes_nothing(fresh) -> None:
    stack, _, _ = fresh
    before = {s: r["id"] for s, r in _containers(FRESH).items()}
    env_before = (REPO / ".env").read_bytes()
    deploy_before = (stack.state_dir / "deploy.env").read_bytes()
    second = _setup()
    assert second.returncode == 0, second.stderr[-3000:]
    after = {s: r["id"] for s, r in _containers(FRESH).items()}
    assert after == before, "a second set-up run recreated containers"
    assert (REPO / ".env").read_bytes() == env_before
    assert (stack.state_dir / "deploy.env").read_bytes() == deploy_before
    assert "building" not in second.stderr, second.stderr


def test_env_example_lists_every_secret_compose_requires() -> None:
    example = read_env_file(REPO / ".env.example")
    compose_text = (REPO / "compose" / "docker-compose.yml").read_text()
    import re

    required = set(re.findall(r"\$\{([A-Z_]+):\?", compose_text))
    assert required, "compose file requires no variables?"
    missing = required - set(example)
    assert not missing, f".env.example lacks {sorted(missing)}"
