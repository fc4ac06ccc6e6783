"""The monitoring on Swarm (issue 14): every exporter a target that is up,
no password in any service's environment, Swarm's rules (promtool), an alert
fired by a real fault (the backend scaled to 0) reaching the alert sink
through Alertmanager, and the console's source and app showing stats per
node and per task and health per task from that Prometheus. Measures the
memory the monitoring takes on the node (``docker stats`` in the node).

Run with a swarm of its own (names and ports of yours)::

    SWARM_NAME=swmonsw SWARM_HTTP_PORT=30088 SWARM_HTTPS_PORT=30443 \\
    SWARM_PROMETHEUS_PORT=30090 SWARM_REGISTRY_PORT=30500 \\
    IMAGE_PREFIX=swmon .venv/bin/pytest -m swarm tests/swarm/test_swarm_monitoring.py

(the ``swarm`` fixture brings up a one-node swarm when none answers and
removes it at the end unless ``SWARM_KEEP=1``).
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from console.core.config import Settings
from console.core.models import SwarmStatsSnapshot
from console.core.sources.swarm_stats import SwarmStatsSource
from tests.stack import REPO
from tests.swarm.conftest import record_figure
from tests.swarm.swarm import Swarm

pytestmark = pytest.mark.swarm

JOBS = (
    "prometheus",
    "alertmanager",
    "backend",
    "worker",
    "node",
    "postgres",
    "redis",
    "nginx",
    "stack",
)
MONITORING = (
    "prometheus",
    "alertmanager",
    "alert_sink",
    "node_exporter",
    "stack_exporter",
    "postgres_exporter",
    "redis_exporter",
    "nginx_exporter",
)


def prom(s: Swarm, path: str, **params: Any) -> Any:
    r = httpx.get(
        f"http://127.0.0.1:{s.prometheus_port}{path}",
        params=params,
        auth=("stackdeck", s.secrets()["monitoring_password"]),
        timeout=10,
    )
    r.raise_for_status()
    return r.json()["data"]


def console_settings(s: Swarm) -> Settings:
    return Settings(
        project=s.stack,
        mode="swarm",
        docker_host=s.docker_host,
        base_url=s.base_url,
        prometheus_url=f"http://127.0.0.1:{s.prometheus_port}",
        monitoring_password=SecretStr(s.secrets()["monitoring_password"]),
        state_dir=s.state_dir / "console",
    )


def poll_stats(s: Swarm) -> SwarmStatsSnapshot:
    async def once() -> SwarmStatsSnapshot | None:
        src = SwarmStatsSource(console_settings(s))
        try:
            return await src.poll()
        finally:
            await src.aclose()

    snap = asyncio.run(once())
    assert snap is not None
    return snap


def test_every_exporter_is_a_target_and_up(swarm: Swarm) -> None:
    def all_up() -> Any:
        missing = []
        for job in JOBS:
            targets = swarm.prometheus_targets(job)
            if not targets or any(t["health"] != "up" for t in targets):
                missing.append((job, [t["health"] for t in targets]))
        return not missing or (False, missing)

    swarm.wait(
        "every scrape job with its targets up", lambda: all_up() is True, timeout=120, every=3
    )
    # the exporters reach what they watch, with the passwords from the secrets
    for metric in ("pg_up", "redis_up", "nginx_up", "stackdeck_engine_up"):
        values = [
            float(r["value"][1]) for r in prom(swarm, "/api/v1/query", query=metric)["result"]
        ]
        assert values and all(v == 1 for v in values), (metric, values)

    # one node exporter and one stack exporter per ready node (global
    # services); polled: a node that rejoined (the multi-node files kill one)
    # is scraped only once DNS discovery found its new tasks (30 s refresh)
    def per_node() -> Any:
        nodes = {
            n.attrs["Description"]["Hostname"]
            for n in swarm.client.nodes.list()
            if n.attrs["Status"]["State"] == "ready"
        }
        uname = prom(swarm, "/api/v1/query", query="node_uname_info")["result"]
        engines = prom(swarm, "/api/v1/query", query="stackdeck_engine_up")["result"]
        seen = (
            {r["metric"]["nodename"] for r in uname},
            {r["metric"]["node"] for r in engines},
        )
        return seen == (nodes, nodes) or (False, nodes, seen)

    swarm.wait(
        "a node exporter and a stack exporter on every node",
        lambda: per_node() is True,
        timeout=120,
        every=3,
    )
    # Prometheus sends to the Alertmanager it found by DNS
    ams = prom(swarm, "/api/v1/alertmanagers")["activeAlertmanagers"]
    assert len(ams) == 1 and ams[0]["url"].endswith(":9093/api/v2/alerts")


def test_no_password_in_any_service_environment(swarm: Swarm) -> None:
    secrets = [v for v in swarm.secrets().values() if len(v) >= 8]
    label = f"com.docker.stack.namespace={swarm.stack}"
    services = swarm.client.services.list(filters={"label": label})
    names = {svc.name.removeprefix(f"{swarm.stack}_") for svc in services}
    assert set(MONITORING) <= names
    for svc in services:
        spec = svc.attrs["Spec"]["TaskTemplate"]["ContainerSpec"]
        text = json.dumps({"env": spec.get("Env"), "args": spec.get("Args")})
        leaked = [i for i, secret in enumerate(secrets) if secret in text]
        assert not leaked, f"{svc.name}: a secret in its environment or arguments"
        for entry in spec.get("Env") or []:
            key, _, value = entry.partition("=")
            # *_PASSWORD_FILE names a file; a *_PASSWORD with a value is a leak
            assert not (key.endswith(("PASSWORD", "PASS")) and value), f"{svc.name}: {key}"


def test_swarm_rules_pass_promtool(swarm: Swarm) -> None:
    r = subprocess.run(
        [
            "docker", "run", "--rm", "--network", "none",
            "-v", f"{REPO / 'compose/monitoring/swarm'}:/w:ro", "-w", "/w/tests",
            "--entrypoint", "promtool", f"{swarm.image_prefix}-monitoring:latest",
            "test", "rules", "rules_test.yml",
        ],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0 and "SUCCESS" in r.stdout, r.stdout + r.stderr


def test_console_shows_stats_per_node_and_health_per_task(swarm: Swarm) -> None:
    nodes = {n.attrs["Description"]["Hostname"] for n in swarm.client.nodes.list()}

    def complete() -> Any:
        snap = poll_stats(swarm)
        backend = [h for h in snap.health if h.service == "backend"]
        ok = (
            snap.available
            and {n.node for n in snap.nodes} == nodes
            and all(n.cpu_percent is not None and n.mem_total and not n.stale for n in snap.nodes)
            and any(t.service == "backend" and t.mem_usage for t in snap.tasks)
            and backend
            and all(h.scrape == "up" and h.health == "healthy" for h in backend)
            # every task the engine runs has its figures, and a task that
            # ended (an earlier test's update or scale) has left them: its
            # series stop, and its node still reports
            and {t.task for t in snap.tasks if t.service == "backend"}
            == {h.task for h in backend}
            == {t["ID"] for t in swarm.running_tasks("backend")}
        )
        seen[:] = [snap]
        return snap if ok else None

    seen: list[Any] = []
    # the ended tasks' last samples age out after STALE_AFTER (a scrape is 15 s)
    swarm.wait("the console's swarm stats complete", complete, timeout=180, every=5)
    snap = seen[-1]
    running = swarm.running_tasks("backend")
    task_ids = {t["ID"] for t in running}
    backend_stats = [t for t in snap.tasks if t.service == "backend"]
    assert {t.task for t in backend_stats} == task_ids
    node_of = {n.id: n.attrs["Description"]["Hostname"] for n in swarm.client.nodes.list()}
    assert {t.node for t in backend_stats} == {node_of[t["NodeID"]] for t in running}
    # the health of each backend task: Prometheus scrapes the task's own address
    health = {h.task: h for h in snap.health if h.service == "backend"}
    assert set(health) == task_ids
    for t in running:
        addresses = {a["Addresses"][0].split("/")[0] for a in t.get("NetworksAttachments") or []}
        assert health[t["ID"]].address.split(":")[0] in addresses

    # the memory the monitoring takes on the node (docker stats in the node)
    out = swarm.docker("stats", "--no-stream", "--format", "{{.Name}}\t{{.MemUsage}}")
    per_service: dict[str, float] = {}
    for line in out.splitlines():
        name, usage = line.split("\t")
        service = name.split(".")[0].removeprefix(f"{swarm.stack}_")
        if service in MONITORING:
            per_service[service] = per_service.get(service, 0.0) + _mib(usage.split("/")[0])
    assert set(per_service) == set(MONITORING)
    record_figure(
        "monitoring_memory_mib_one_node",
        {
            **{k: round(v, 1) for k, v in sorted(per_service.items())},
            "total": round(sum(per_service.values()), 1),
        },
    )


def _mib(text: str) -> float:
    m = re.match(r"([\d.]+)\s*([KMG]i?B|B)", text.strip())
    assert m, text
    factor = {
        "B": 1 / 2**20,
        "KiB": 1 / 1024,
        "MiB": 1.0,
        "GiB": 1024.0,
        "KB": 1 / 1024,
        "MB": 1.0,
        "GB": 1024.0,
    }
    return float(m.group(1)) * factor[m.group(2)]


def test_the_console_app_shows_them(swarm: Swarm) -> None:
    """The real app (run_test) on the real swarm: the Stats panel lists the
    node and the backend task, the Health panel the backend task up."""
    from console.ui.app import create_app
    from console.ui.panels import HealthPanel, StatsPanel

    app = create_app(console_settings(swarm))

    async def run() -> tuple[list[str], list[str]]:
        async with app.run_test(size=(160, 48)) as pilot:
            stats_keys: list[str] = []
            health_keys: list[str] = []
            for _ in range(60):
                await pilot.pause(0.5)
                st = app.query_one(StatsPanel).table
                he = app.query_one(HealthPanel).table
                stats_keys = list(st.shown_keys) if st is not None else []
                health_keys = list(he.shown_keys) if he is not None else []
                if any(k.startswith("task:") and "backend" in k for k in stats_keys) and any(
                    k.startswith("task:") for k in health_keys
                ):
                    break
            return stats_keys, health_keys

    stats_keys, health_keys = asyncio.run(run())
    nodes = {n.attrs["Description"]["Hostname"] for n in swarm.client.nodes.list()}
    assert {f"node:{n}" for n in nodes} <= set(stats_keys), stats_keys
    assert any(k.startswith(f"task:{swarm.stack}_backend.") for k in stats_keys), stats_keys
    backend_ids = {t["ID"] for t in swarm.running_tasks("backend")}
    assert {f"task:{i}" for i in backend_ids} <= set(health_keys), health_keys


def test_an_alert_from_a_real_fault_reaches_the_sink(swarm: Swarm) -> None:
    """The backend scaled to 0: its targets leave DNS, NoBackendTask fires
    (Swarm's rule), Alertmanager sends it to the sink; scaled back, it resolves."""
    before = len(swarm.sink_messages().get("webhooks") or [])
    swarm.docker("service", "scale", "--detach", f"{swarm.service('backend')}=0")
    try:

        def firing() -> bool:
            alerts = prom(swarm, "/api/v1/alerts")["alerts"]
            return any(
                a["labels"].get("alertname") == "NoBackendTask" and a["state"] == "firing"
                for a in alerts
            )

        fired_after = swarm.wait("NoBackendTask firing", firing, timeout=240, every=5)

        def delivered() -> list[dict[str, Any]]:
            hooks = (swarm.sink_messages().get("webhooks") or [])[before:]
            return [
                h
                for h in hooks
                if any(
                    a.get("labels", {}).get("alertname") == "NoBackendTask"
                    and a.get("status") == "firing"
                    for a in (h.get("body") or h).get("alerts", [])
                )
            ]

        sent_after = swarm.wait("the alert at the sink", delivered, timeout=120, every=5)
        record_figure(
            "no_backend_alert_seconds",
            {
                "firing_after_scale_to_0": round(fired_after, 1),
                "at_sink_after_firing": round(sent_after, 1),
            },
        )
        # the console shows no backend task to probe (its targets are gone)
        snap = poll_stats(swarm)
        assert not [h for h in snap.health if h.service == "backend" and h.scrape == "up"]
    finally:
        swarm.docker("service", "scale", "--detach", f"{swarm.service('backend')}=1")
    swarm.wait(
        "the backend answering again through nginx",
        lambda: httpx.get(f"{swarm.base_url}/api/health", timeout=5).status_code == 200,
        timeout=180,
        every=2,
    )
