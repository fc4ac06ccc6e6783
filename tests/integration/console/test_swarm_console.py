"""The console on a real swarm (issue 14): the swarm source and the Containers
panel against a one-node swarm of scripts/swarm.sh, read from the host
through the manager's engine API (``DOCKER_HOST=$(swarm.sh env)``, a unix
socket in the swarm's state folder).

Marker ``swarm``: deselected unless asked for (``pytest -m swarm``; see
tests/conftest.py). A one-node swarm whose manager answers on that socket is
used as it is; otherwise ``scripts/swarm.sh up --nodes 1`` brings one up, and
``down`` removes it at the end (``SWARM_KEEP=1`` keeps it). The tests deploy a
small stack of their own (``<stack>-console``: the stack's market-sim image,
2 replicas, pulled from the swarm's registry) beside whatever else runs, and
remove it at the end. The host engine is only read (``docker info``: it is
not in a swarm).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from console.core.config import Settings
from console.core.monitor import Monitor
from console.core.sources.docker.events import EventsSource
from console.core.sources.docker.handle import DockerHandle
from console.core.sources.docker.swarm import SwarmSource
from console.ui.app import create_app
from console.ui.panels import ContainersPanel, EventsPanel
from console.ui.widgets.table import ListTable
from tests.swarm.swarm import Swarm

pytestmark = pytest.mark.swarm


@pytest.fixture(scope="module")
def one_node() -> Iterator[Swarm]:
    s = Swarm.from_environment()
    brought_up = False
    try:
        s.client.ping()
    except Exception:
        brought_up = True
        r = s.script("up", "--nodes", "1")
        if r.returncode != 0:
            pytest.fail(f"scripts/swarm.sh up --nodes 1 failed:\n{r.stderr[-3000:]}")
    yield s
    if brought_up and os.environ.get("SWARM_KEEP") != "1":
        r = s.script("down", "--yes")
        assert r.returncode == 0, r.stderr[-2000:]


def _stack_file(s: Swarm, replicas: int) -> str:
    image = f"{s.registry}/{s.image_prefix}-market-sim:latest"
    return json.dumps(
        {
            "version": "3.8",
            "services": {
                "web": {
                    "image": image,
                    "command": ["python3", "-m", "platform_services.providers.sim"],
                    "healthcheck": {
                        "test": [
                            "CMD-SHELL",
                            "curl -fsS -o /dev/null http://127.0.0.1:8100/healthz || exit 1",
                        ],
                        "interval": "2s",
                        "timeout": "3s",
                        "retries": 3,
                    },
                    "deploy": {"replicas": replicas, "endpoint_mode": "dnsrr"},
                }
            },
        }
    )


@pytest.fixture(scope="module")
def small_stack(one_node: Swarm) -> Iterator[str]:
    """``<stack>-console``: 2 replicas of the market-sim image, deployed with
    ``docker stack deploy`` on the manager (waits until they run)."""
    name = f"{one_node.stack}-console"
    r = subprocess.run(
        [
            *("docker", "exec", "-i", one_node.manager),
            *("docker", "stack", "deploy", "--detach=false", "-c", "-", name),
        ],
        input=_stack_file(one_node, 2),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, f"docker stack deploy {name}: {r.stderr[-2000:]}"
    yield name
    _remove_stack(one_node, name)


def settings_for(s: Swarm, project: str, **kw: Any) -> Settings:
    values: dict[str, Any] = {
        "project": project,
        "docker_host": s.docker_host,
        "request_timeout": 2.0,
        "prometheus_url": None,
        "alertmanager_url": None,
        "read_only": True,
    }
    values.update(kw)
    return Settings(**values)


async def poll(settings: Settings) -> Any:
    src = SwarmSource(settings, DockerHandle(settings))
    try:
        return await src.poll()
    finally:
        await src.aclose()
        src.handle.close()


async def test_the_source_reads_services_tasks_and_nodes(one_node: Swarm, small_stack: str) -> None:
    snap = await poll(settings_for(one_node, small_stack))
    assert snap is not None and snap.mode == "swarm", snap
    assert [s.service for s in snap.services] == ["web"]
    web = snap.services[0]
    assert (web.name, web.mode, web.running, web.desired) == (
        f"{small_stack}_web",
        "replicated",
        2,
        2,
    )
    assert web.image.endswith(f"{one_node.image_prefix}-market-sim") and web.tag == "latest"
    live = [t for t in web.shown_tasks if t.state == "running"]
    assert sorted(t.slot for t in live) == [1, 2]
    assert {t.node for t in live} == {one_node.manager}  # the node's hostname
    assert all(t.desired_state == "running" and t.since is not None for t in live)
    # the swarm has one node here, the manager the console reads
    (node,) = snap.nodes
    assert (node.hostname, node.role, node.leader, node.availability, node.state) == (
        one_node.manager,
        "manager",
        True,
        "active",
        "ready",
    )
    assert {"edge": "true", "db": "true"}.items() <= node.labels.items()
    assert snap.node_id == node.id
    assert node.engine_version and node.engine_version.startswith("26.")


async def test_no_such_stack_on_a_manager_is_a_compose_verdict(one_node: Swarm) -> None:
    snap = await poll(settings_for(one_node, "nosuchstack"))
    assert snap is not None and snap.mode == "compose"
    assert snap.reason == "no swarm service labelled com.docker.stack.namespace=nosuchstack"


async def test_the_host_engine_is_no_swarm(one_node: Swarm) -> None:
    """The engine the compose stacks run on: compose, and why (read only)."""
    snap = await poll(settings_for(one_node, "investment", docker_host=None))
    assert snap is not None and snap.mode == "compose"
    assert snap.reason is not None and "not part of a swarm" in snap.reason


def _docker(*args: str) -> None:
    """The host's docker CLI (pause/unpause of the node container)."""
    subprocess.run(["docker", *args], check=True, timeout=60, capture_output=True)


def _web_cells(app: Any, key_prefix: str = "service:") -> dict[str, str] | None:
    table = app.query_one(ContainersPanel).table
    if table is None or table.id != "swarm-table":
        return None
    for key in table.shown_keys:
        if key.startswith(key_prefix):
            return {c: table.get_cell(key, c).plain for c in ("name", "state", "replicas")}
    return None


def _live_task_rows(app: Any) -> int:
    table = app.query_one(ContainersPanel).table
    if table is None:
        return 0
    return sum(
        1
        for k in table.shown_keys
        if k.startswith("task:") and table.get_cell(k, "state").plain == "running"
    )


async def _until(pilot: Any, what: str, predicate: Any, within: float = 120) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():
            return
        await pilot.pause(0.25)
    raise AssertionError(f"{what}: not within {within} s")


async def test_the_panel_follows_a_scale_and_an_engine_that_stops(
    one_node: Swarm, small_stack: str
) -> None:
    """The real app: services -> tasks -> nodes from the manager; scaled to 3
    and back, the panel follows; the manager's engine frozen (its container
    paused), the panel turns stale with its rows kept and comes back after."""
    settings = settings_for(one_node, small_stack)

    def factory(s: Settings, sink: Any) -> Monitor:
        return Monitor(s, sink, sources=[SwarmSource(s, DockerHandle(s))], autostart=False)

    app = create_app(settings, monitor_factory=factory)
    service = f"{small_stack}_web"
    async with app.run_test(size=(160, 48)) as pilot:
        panel = app.query_one(ContainersPanel)
        await _until(
            pilot, "web 2/2 shown", lambda: (_web_cells(app) or {}).get("replicas") == "2/2"
        )
        assert panel.swarm_mode and _live_task_rows(app) == 2
        assert f"swarm {small_stack} · 1 service · 2/2 tasks · 1 node" in str(panel.border_title)
        table = panel.table
        assert table is not None and any(k.startswith("node:") for k in table.shown_keys)

        await asyncio.to_thread(one_node.docker, "service", "scale", "-d", f"{service}=3")
        await _until(
            pilot, "web 3/3 shown", lambda: (_web_cells(app) or {}).get("replicas") == "3/3"
        )
        await _until(pilot, "3 running task rows", lambda: _live_task_rows(app) == 3)

        await asyncio.to_thread(one_node.docker, "service", "scale", "-d", f"{service}=2")
        await _until(pilot, "back to 2 running tasks", lambda: _live_task_rows(app) == 2)
        assert (_web_cells(app) or {}).get("replicas") == "2/2"

        await asyncio.to_thread(_docker, "pause", one_node.manager)
        try:
            await _until(pilot, "stale marker", lambda: panel.has_class("-stale"), within=60)
            assert "swarm:" in str(panel.border_subtitle)
            assert (_web_cells(app) or {}).get("replicas") == "2/2"  # the last good rows
        finally:
            await asyncio.to_thread(_docker, "unpause", one_node.manager)
        await _until(pilot, "fresh again", lambda: not panel.has_class("-stale"), within=90)
        await pilot.press("q")


async def test_a_lost_node_shows_down_and_its_task_rescheduled(one_node: Swarm) -> None:
    """Two nodes (``swarm.sh up --nodes 2`` adds the second), 2 replicas
    spread over them; node 2's container killed (its engine and its task die
    at once): the panel shows node 2 down and the service back to 2/2 with
    both tasks on node 1. Node 2 is removed at the end (container, volume,
    swarm membership). Prints when each was seen (not asserted: timings vary)."""
    r = await asyncio.to_thread(one_node.script, "up", "--nodes", "2")
    assert r.returncode == 0, r.stderr[-2000:]
    name = f"{one_node.stack}-spread"
    deploy = await asyncio.to_thread(
        subprocess.run,
        [
            *("docker", "exec", "-i", one_node.manager),
            *("docker", "stack", "deploy", "--detach=false", "-c", "-", name),
        ],
        input=_stack_file(one_node, 2),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert deploy.returncode == 0, deploy.stderr[-2000:]
    victim = one_node.node(2)
    settings = settings_for(one_node, name)

    def factory(s: Settings, sink: Any) -> Monitor:
        handle = DockerHandle(s)
        sources = [SwarmSource(s, handle), EventsSource(s, handle)]
        return Monitor(s, sink, sources=sources, autostart=False)

    def swarm_events() -> list[tuple[str, str, str]]:
        table = app.query_one(EventsPanel).query_one(ListTable)
        return [
            tuple(table.get_cell(k, c).plain for c in ("container", "action", "detail"))  # type: ignore[misc]
            for k in table.shown_keys
        ]

    def node_cells(key_host: str) -> dict[str, str]:
        table = app.query_one(ContainersPanel).table
        if table is None:
            return {}
        for key in table.shown_keys:
            if key.startswith("node:") and table.get_cell(key, "name").plain.startswith(key_host):
                return {c: table.get_cell(key, c).plain for c in ("state", "desired")}
        return {}

    def running_on() -> list[str]:
        table = app.query_one(ContainersPanel).table
        if table is None:
            return []
        return sorted(
            table.get_cell(k, "node").plain
            for k in table.shown_keys
            if k.startswith("task:") and table.get_cell(k, "state").plain == "running"
        )

    app = create_app(settings, monitor_factory=factory)
    try:
        async with app.run_test(size=(160, 48)) as pilot:
            await _until(
                pilot,
                "one task on each node",
                lambda: running_on() == sorted([one_node.manager, victim]),
                within=180,
            )
            assert node_cells(victim) == {"state": "ready", "desired": "active"}
            await asyncio.to_thread(_docker, "kill", victim)
            t0 = time.monotonic()
            await _until(pilot, "node 2 down", lambda: node_cells(victim).get("state") == "down")
            down_s = time.monotonic() - t0
            await _until(
                pilot,
                "both tasks on node 1",
                lambda: (
                    running_on() == [one_node.manager, one_node.manager]
                    and (_web_cells(app) or {}).get("replicas") == "2/2"
                ),
                within=180,
            )
            moved_s = time.monotonic() - t0
            title = str(app.query_one(ContainersPanel).border_title)
            assert "2 nodes, 1 down" in title
            # the Events panel: the node down and the task moved, from the snapshots
            await _until(
                pilot,
                "swarm events",
                lambda: (
                    any(e[:2] == (victim, "node down") for e in swarm_events())
                    and any(
                        e[1] == "rescheduled" and e[2] == f"{victim} -> {one_node.manager}"
                        for e in swarm_events()
                    )
                ),
                within=30,
            )
            print(
                f"[figure] console: node down shown after {down_s:.1f} s, task moved {moved_s:.1f} s"
            )
            await pilot.press("q")
    finally:
        # the node first: its lost task holds the stack's network until then
        await asyncio.to_thread(_remove_node, one_node, 2)
        await asyncio.to_thread(_remove_stack, one_node, name)


def _remove_stack(s: Swarm, name: str) -> None:
    """``docker stack rm``, again until its network goes too (a task being
    shut down holds it for a moment)."""

    def gone() -> bool:
        r = subprocess.run(
            ["docker", "exec", s.manager, "docker", "stack", "rm", name],
            capture_output=True,
            text=True,
            timeout=120,
        )
        return r.returncode == 0 and not s.client.networks.list(names=[f"{name}_default"])

    s.wait(f"stack {name} removed", gone, timeout=120, every=2)


def _remove_node(s: Swarm, i: int) -> None:
    """Node ``i`` gone for good: its container and volume removed, and the
    swarm told (``docker node rm --force`` on the manager)."""
    subprocess.run(["docker", "rm", "-f", "-v", s.node(i)], capture_output=True, timeout=120)
    subprocess.run(
        ["docker", "volume", "rm", f"{s.name}_node-{i}"], capture_output=True, timeout=60
    )
    s.docker("node", "rm", "--force", s.node(i))
