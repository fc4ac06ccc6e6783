"""The stack exporter on Swarm (NODE_NAME set): the swarm stack's containers
of its node's engine, labelled with node and task, and the task info that
lets the console join a scrape target to its task. The engine is a fake
(httpx.MockTransport) answering with the shapes of Docker 26's API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from platform_services.monitoring.stack_exporter import (
    StackCollector,
    container_addresses,
    health_status,
    swarm_identity,
)

BACKEND = {
    "Id": "c1",
    "Names": ["/investment_backend.1.p9yqcu134iis0eygduo78tbsi"],
    "Status": "Up 4 minutes (healthy)",
    "Labels": {
        "com.docker.stack.namespace": "investment",
        "com.docker.swarm.service.name": "investment_backend",
        "com.docker.swarm.task.id": "p9yqcu134iis0eygduo78tbsi",
    },
    "NetworkSettings": {
        "Networks": {
            "investment_default": {"IPAddress": "10.0.2.5"},
            "investment_data": {"IPAddress": "10.0.1.10"},
        }
    },
}
STATS = {
    "cpu_stats": {"cpu_usage": {"total_usage": 2_500_000_000}, "online_cpus": 2},
    "memory_stats": {"usage": 150_000_000, "stats": {"inactive_file": 10_000_000}},
}


@pytest.mark.parametrize(
    ("status", "health"),
    [
        ("Up 4 minutes (healthy)", "healthy"),
        ("Up 5 seconds (health: starting)", "starting"),
        ("Up 2 minutes (unhealthy)", "unhealthy"),
        ("Up 2 minutes", "none"),
        ("", "none"),
    ],
)
def test_health_status(status: str, health: str) -> None:
    assert health_status(status) == health


def test_addresses_and_identity() -> None:
    assert container_addresses(BACKEND) == "10.0.1.10,10.0.2.5"
    assert container_addresses({"NetworkSettings": {"Networks": {"x": {"IPAddress": ""}}}}) == ""
    assert swarm_identity(BACKEND["Labels"], "investment") == (  # type: ignore[arg-type]
        "backend",
        "p9yqcu134iis0eygduo78tbsi",
    )


def engine(seen: list[str]) -> httpx.Client:
    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        path = request.url.path
        if path == "/containers/json":
            return httpx.Response(200, json=[BACKEND])
        if path.endswith("/stats"):
            return httpx.Response(200, json=STATS)
        if path.endswith("/json"):
            return httpx.Response(
                200, json={"HostConfig": {"Memory": 402653184, "NanoCpus": 10**9}}
            )
        return httpx.Response(404)

    return httpx.Client(transport=httpx.MockTransport(answer), base_url="http://docker")


def samples(collector: StackCollector) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for family in collector.collect():
        for s in family.samples:
            out.setdefault(s.name, []).append(s)
    return out


def test_swarm_mode_labels_every_series_with_node_and_task(tmp_path: Path) -> None:
    seen: list[str] = []
    c = StackCollector(engine(seen), "investment", tmp_path / "x", tmp_path, node="node-1")
    got = samples(c)
    # the swarm stack's label, not compose's project label
    assert "com.docker.stack.namespace=investment" in httpx.URL(seen[0]).params["filters"]
    mem = got["container_memory_working_set_bytes"][0]
    assert mem.labels == {
        "name": "investment_backend.1.p9yqcu134iis0eygduo78tbsi",
        "service": "backend",
        "node": "node-1",
        "task": "p9yqcu134iis0eygduo78tbsi",
    }
    assert mem.value == 140_000_000
    assert got["container_cpu_usage_seconds_total"][0].value == 2.5
    info = got["stackdeck_container_info"][0]
    assert info.labels["addresses"] == "10.0.1.10,10.0.2.5" and info.labels["health"] == "healthy"
    assert got["stackdeck_engine_up"][0].labels == {"node": "node-1"}
    # no colours, no backups on Swarm: their rules must not fire there
    assert "stackdeck_serving_colour" not in got
    assert "stackdeck_last_backup_timestamp_seconds" not in got


def test_compose_mode_unchanged(tmp_path: Path) -> None:
    seen: list[str] = []
    c = StackCollector(engine(seen), "investment", tmp_path / "x", tmp_path)
    got = samples(c)
    assert "com.docker.compose.project" in httpx.URL(seen[0]).params["filters"]
    assert set(got["container_memory_working_set_bytes"][0].labels) == {"name", "service"}
    assert "stackdeck_container_info" not in got
    assert "stackdeck_last_backup_timestamp_seconds" in got
