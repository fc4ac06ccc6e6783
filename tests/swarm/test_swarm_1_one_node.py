"""The stack on a one-node Swarm: served through nginx, secrets as Docker
secrets, Swarm's own rolling update (start-first) under load with no failed
request, a broken version rolled back by Swarm itself, and the backend
scaled 1 -> 3 -> 1 under load with no failed request.

The tests run in order and each leaves the backend at one task for the next.
Figures (not asserted: timings vary) go to docs/SCALE-OUT.md.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fault_versions import Fault, build_fault_version
from tests.load import MIXED, LoadLoop
from tests.swarm.conftest import BASE_VERSION, record_figure
from tests.swarm.swarm import Swarm

pytestmark = pytest.mark.swarm

BASE = BASE_VERSION
V2 = "v2.0.0-swarm"
V3_BROKEN = "v3.0.0-swarm.broken"
TEST_START_PERIOD = "10s"
"""The broken v3's health-check start period, set with the update: Swarm
counts failing probes only after it, so the production value (60 s, the
compose file's) would spend a minute of the test waiting. The rollback
restores the production value (asserted)."""


@pytest.fixture(scope="module", autouse=True)
def _fault_images_removed(swarm: Swarm) -> Iterator[None]:
    """The fault versions built on the host engine go at the end (the
    registry's copies go with the swarm)."""
    yield
    for version in (V2, V3_BROKEN):
        subprocess.run(
            ["docker", "rmi", f"{swarm.image_prefix}-backend:{version}"], capture_output=True
        )


def _load(swarm: Swarm) -> LoadLoop:
    """Two keep-alive connections, health and a database-and-cache read in
    turn, a request every 50 ms each; bounded in count and time."""
    return LoadLoop(
        swarm.base_url, MIXED, workers=2, pause=0.05, max_requests=8000, max_seconds=240
    )


def _health(swarm: Swarm) -> dict[str, Any]:
    r = httpx.get(f"{swarm.base_url}/api/health", timeout=10)
    body = dict(r.json())
    body["_status"] = r.status_code
    return body


def _build_and_push(swarm: Swarm, base: str, version: str, fault: Fault) -> str:
    """A version of the backend built on the host, pushed to the registry;
    the reference the nodes pull."""
    image = f"{swarm.image_prefix}-backend"
    build_fault_version(image, base, version, fault)
    r = swarm.script("push", f"{image}:{version}", timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return f"{swarm.registry}/{image}:{version}"


def _one_backend_on(swarm: Swarm, version: str) -> None:
    image = swarm.image_of("backend")
    assert image.endswith(f":{version}"), image
    tasks = swarm.running_tasks("backend")
    assert len(tasks) == 1, [t["Status"] for t in tasks]


def test_stack_serves_through_nginx(swarm: Swarm) -> None:
    body = _health(swarm)
    assert body["_status"] == 200, body
    assert body["checks"]["database"]["status"] == "healthy", body
    assert body["checks"]["cache"]["status"] == "healthy", body
    # the worker runs (a singleton) and reports its heartbeat through Redis
    assert body["checks"]["workers"]["alive"] == 1, body["checks"]["workers"]
    for short in ("backend", "worker", "nginx", "db", "redis", "frontend", "market-sim"):
        spec = swarm.inspect(short)["Spec"]
        assert spec["Mode"]["Replicated"]["Replicas"] == 1, (short, spec["Mode"])
        assert spec["EndpointSpec"]["Mode"] == "dnsrr", short
    # the per-node part of the monitoring: one task on every node
    assert "Global" in swarm.inspect("node_exporter")["Spec"]["Mode"]
    # the page, through nginx, from the frontend service
    r = httpx.get(f"{swarm.base_url}/", timeout=10)
    assert r.status_code == 200 and "<html" in r.text.lower(), r.status_code


def test_prometheus_scrapes_every_node_and_task(swarm: Swarm) -> None:
    """Prometheus on Swarm finds its targets by DNS: a node exporter per node
    (global), a backend target per task; all up."""
    nodes = len(swarm.client.nodes.list())

    def all_up(job: str, n: int) -> bool:
        targets = swarm.prometheus_targets(job)
        return len(targets) == n and all(t["health"] == "up" for t in targets)

    swarm.wait(f"{nodes} node target(s) up", lambda: all_up("node", nodes), timeout=90, every=3)
    tasks = len(swarm.running_tasks("backend"))
    swarm.wait(
        f"{tasks} backend target(s) up", lambda: all_up("backend", tasks), timeout=90, every=3
    )
    assert all_up("worker", 1)


def test_secrets_are_docker_secrets_not_environment(swarm: Swarm) -> None:
    """No secret value in any service's environment; the backend, the
    database and the cache get theirs as files (and health above shows the
    backend authenticated to both with them)."""
    secrets = swarm.secrets()
    assert {"postgres_password", "redis_password", "jwt_secret"} <= set(secrets)
    for svc in swarm.client.services.list(
        filters={"label": f"com.docker.stack.namespace={swarm.stack}"}
    ):
        container = svc.attrs["Spec"]["TaskTemplate"]["ContainerSpec"]
        env = "\n".join(container.get("Env") or [])
        name = svc.attrs["Spec"]["Name"]
        for key, value in secrets.items():
            assert value not in env, f"{name}: the secret {key} is in its environment"
    names = {
        ref["SecretName"]
        for ref in swarm.inspect("backend")["Spec"]["TaskTemplate"]["ContainerSpec"].get(
            "Secrets", []
        )
    }
    assert f"{swarm.stack}_postgres_password" in names and f"{swarm.stack}_jwt_secret" in names, (
        names
    )
    # a login works: the backend read TEST_PASSWORD from its secret file
    r = httpx.post(
        f"{swarm.base_url}/api/auth/login",
        json={"username": "test", "password": secrets["test_password"]},
        timeout=10,
    )
    assert r.status_code == 200, r.text[:300]


def test_the_engine_api_is_not_reachable_from_the_stack(swarm: Swarm) -> None:
    """The manager's engine API answers the host (its unix socket in the
    swarm's state folder; who else may use it: test_swarm_access.py) and no
    task: a task of the stack reaches the node (its Swarm port 2377 answers
    on the nodes' network) but no engine API on TCP, through neither the
    node's address on the task's gateway nor on the nodes' network."""
    assert swarm.client.version()["ApiVersion"]  # the host's way in works
    node_ip = swarm.node_address(swarm.manager)
    probe = (
        "import socket, struct, sys\n"
        "gw = [socket.inet_ntoa(struct.pack('<L', int(f[2], 16)))\n"
        "      for f in (l.split() for l in open('/proc/net/route').readlines()[1:])\n"
        "      if f[1] == '00000000']\n"
        "for host in gw + sys.argv[1:]:\n"
        "    for port in (2377, 2375):\n"
        "        try:\n"
        "            socket.create_connection((host, port), timeout=3).close()\n"
        "            print(host, port, 'open')\n"
        "        except OSError as exc:\n"
        "            print(host, port, type(exc).__name__)\n"
    )
    cid = swarm.task_container("backend")
    out = swarm.docker("exec", cid, "python3", "-c", probe, node_ip)
    seen = {tuple(line.split()[:2]): line.split()[2] for line in out.splitlines()}
    hosts = {h for h, _ in seen}
    assert node_ip in hosts and len(hosts) >= 2, out  # the gateway and the node
    assert seen[(node_ip, "2377")] == "open", out  # the node is reachable (Swarm's port)...
    for host in hosts:
        assert seen[(host, "2375")] != "open", out  # ...its engine API is not


def test_deploy_refuses_secrets_that_differ_from_the_swarms(swarm: Swarm) -> None:
    """The state folder replaced while the swarm keeps the secrets it was
    deployed with: the deploy stops, names the secret, changes nothing."""
    folder = swarm.state_dir / "secrets"
    saved = swarm.state_dir / "secrets.saved-by-test"
    shutil.copytree(folder, saved)
    try:
        (folder / "jwt_secret").write_text("not-the-one-the-swarm-has")
        (folder / "redis_password").unlink()
        before = swarm.inspect("backend")["Version"]["Index"]
        r = swarm.script("deploy", timeout=120)
        assert r.returncode != 0, r.stderr[-2000:]
        assert "the swarm's secrets differ from" in r.stderr, r.stderr[-2000:]
        assert "jwt_secret" in r.stderr and "redis_password (no file)" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
        assert swarm.inspect("backend")["Version"]["Index"] == before
        assert not (folder / "redis_password").exists()  # nothing generated
    finally:
        shutil.rmtree(folder)
        saved.rename(folder)


def test_a_failed_migration_stops_the_deploy_before_the_rollout(swarm: Swarm) -> None:
    """deploy migrates first, as a one-off job of the new image: when that
    fails (here the version was never pushed), nothing is rolled out and the
    job is gone."""
    before = swarm.inspect("backend")
    r = subprocess.run(
        ["bash", "scripts/swarm.sh", "deploy"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "BACKEND_VERSION": "v0.0.0-never-pushed"},
    )
    assert r.returncode != 0, r.stderr[-2000:]
    assert "alembic upgrade head failed" in r.stderr, r.stderr[-2000:]
    assert "nothing was rolled out" in r.stderr and "Traceback" not in r.stderr
    after = swarm.inspect("backend")
    assert after["Version"]["Index"] == before["Version"]["Index"]
    assert swarm.image_of("backend").endswith(f"-backend:{BASE}")
    assert not swarm.client.services.list(filters={"name": swarm.service("migrate")})


def test_rolling_update_v1_to_v2_under_load_without_failed_requests(swarm: Swarm) -> None:
    _one_backend_on(swarm, BASE)
    ref = _build_and_push(swarm, BASE, V2, Fault())
    t0 = time.monotonic()
    with _load(swarm) as load:
        swarm.docker("service", "update", "--detach", "--image", ref, swarm.service("backend"))
        took = swarm.wait(
            "the rolling update to v2",
            lambda: swarm.update_status("backend").get("State") == "completed",
            timeout=240,
        )
        # traffic on v2 for a while after the update completed: 40 more
        # answers of v2 (polled, bounded), so a failure after it shows
        done = time.monotonic()
        swarm.wait(
            "40 answers of v2 after the update completed",
            lambda: load.result().versions(since=done).get(V2, 0) >= 40,
            timeout=30,
            every=0.2,
        )
    result = load.result()
    figures = {
        "nodes": 1,
        "update_completed_s": round(took, 1),
        "first_v2_answer_s": round(min(s.t for s in result.samples if s.version == V2) - t0, 1)
        if result.versions().get(V2)
        else None,
        "load": result.summary(),
    }
    record_figure("swarm_rolling_update_v1_v2", figures)
    _one_backend_on(swarm, V2)
    assert _health(swarm)["version"] == V2
    assert result.versions().get(V2, 0) > 0, result.summary()
    # no failed request; a keep-alive retry only if nginx itself restarted (it did not)
    result.assert_clean(reloads=0)


def test_broken_v3_is_rolled_back_by_swarm(swarm: Swarm) -> None:
    """A version whose health check fails never gets traffic: Swarm keeps the
    old task (start-first), sees the new one fail within the monitor window,
    and rolls the service back by itself. The reason is the service's
    UpdateStatus message."""
    _one_backend_on(swarm, V2)
    ref = _build_and_push(swarm, V2, V3_BROKEN, Fault(unhealthy=True))
    seen: list[tuple[float, str, str]] = []

    def rolled_back() -> bool:
        st = swarm.update_status("backend")
        entry = (round(time.monotonic() - t0, 1), st.get("State", ""), st.get("Message", ""))
        if not seen or seen[-1][1:] != entry[1:]:
            seen.append(entry)
        return st.get("State") == "rollback_completed"

    start_period = swarm.inspect("backend")["Spec"]["TaskTemplate"]["ContainerSpec"]["Healthcheck"][
        "StartPeriod"
    ]
    t0 = time.monotonic()
    with _load(swarm) as load:
        swarm.docker(
            "service",
            "update",
            "--detach",
            "--image",
            ref,
            "--health-start-period",
            TEST_START_PERIOD,
            swarm.service("backend"),
        )
        took = swarm.wait("the automatic rollback of v3", rolled_back, timeout=300, every=1)
    result = load.result()
    reasons = [msg for _, state, msg in seen if state.startswith("rollback")]
    failed_v3 = [
        t["Status"].get("Err", "")
        for t in swarm.client.services.get(swarm.service("backend")).tasks()
        if t["Spec"]["ContainerSpec"]["Image"].split("@")[0].endswith(V3_BROKEN)
    ]
    record_figure(
        "swarm_broken_v3_rollback",
        {
            "nodes": 1,
            "rollback_completed_s": round(took, 1),
            "states": seen,
            "v3_task_errors": failed_v3,
            "load": result.summary(),
        },
    )
    # why: Swarm names the failed task in the status it rolled back with
    assert any("due to failure" in msg or "unhealthy" in msg for msg in reasons), seen
    assert any("unhealthy" in err for err in failed_v3), failed_v3
    _one_backend_on(swarm, V2)
    # the rollback restored the whole previous spec, the production start period too
    health = swarm.inspect("backend")["Spec"]["TaskTemplate"]["ContainerSpec"]["Healthcheck"]
    assert health["StartPeriod"] == start_period, health
    assert V3_BROKEN not in result.versions(), result.versions()
    assert _health(swarm)["version"] == V2
    result.assert_clean(reloads=0)


def _upstreams(swarm: Swarm, n: int) -> set[str]:
    """The task addresses nginx sent ``n`` requests to."""
    seen = set()
    with httpx.Client(timeout=10) as client:
        for _ in range(n):
            r = client.get(f"{swarm.base_url}/api/health")
            assert r.status_code == 200, r.status_code
            seen.add(r.headers.get("X-Upstream-Addr", ""))
    return seen


def test_scale_backend_1_3_1_under_load_without_failed_requests(swarm: Swarm) -> None:
    _one_backend_on(swarm, V2)
    figures: dict[str, Any] = {"nodes": 1}
    with _load(swarm) as load:
        for n in (3, 1):
            t0 = time.monotonic()
            swarm.docker("service", "scale", "--detach=false", f"{swarm.service('backend')}={n}")
            swarm.wait(
                f"{n} running backend task(s)", lambda n=n: len(swarm.running_tasks("backend")) == n
            )
            figures[f"to_{n}_s"] = round(time.monotonic() - t0, 1)
            if n == 3:
                # nginx spreads the requests over the three tasks (dnsrr)
                figures["upstreams_at_3"] = len(
                    swarm.wait(
                        "requests on 3 tasks",
                        lambda: len(_upstreams(swarm, 30)) == 3 or None,
                        timeout=30,
                    )
                    and _upstreams(swarm, 30)
                )
    result = load.result()
    figures["load"] = result.summary()
    record_figure("swarm_scale_1_3_1", figures)
    assert figures["upstreams_at_3"] == 3, figures
    _one_backend_on(swarm, V2)
    result.assert_clean(reloads=0)


def test_swarm_sh_refuses_bad_input_with_one_line(swarm: Swarm) -> None:
    """Bad input: a clear error naming the fix, no traceback, nothing started."""
    for args, words in (
        (("up", "--nodes", "zero"), "--nodes must be a number"),
        (("up", "--nodes", "2", "--managers", "3"), "more managers than nodes"),
        (("frobnicate",), "unknown command"),
        # destructive: refused without a terminal to confirm on, or --yes
        (("down",), "confirm on a terminal, or add --yes"),
    ):
        r = subprocess.run(
            ["bash", "scripts/swarm.sh", *args], capture_output=True, text=True, timeout=60
        )
        assert r.returncode != 0, args
        assert words in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr
    # nothing was removed
    assert (
        subprocess.run(
            ["docker", "container", "inspect", swarm.manager], capture_output=True
        ).returncode
        == 0
    )
