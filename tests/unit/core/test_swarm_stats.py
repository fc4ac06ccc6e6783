"""Stats per node and per task, health per task, of a swarm stack from its
Prometheus (console.core.sources.swarm_stats): the pure shaping on answers
recorded from a real one-node swarm (data/swarm_prometheus_1node.json), the
same answers with a node gone quiet, and the source with a fake client
(Prometheus answering, then not, then again)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from console.core.config import Settings
from console.core.models import SwarmStatsSnapshot, task_short_name
from console.core.prom import PromError, parse_vector
from console.core.sources.prometheus import PrometheusUnavailable
from console.core.sources.swarm_stats import QUERIES, STALE_AFTER, SwarmStatsSource, shape

DATA = Path(__file__).parent / "data" / "swarm_prometheus_1node.json"
NOW = datetime(2026, 12, 7, 15, 33, tzinfo=UTC)


def recorded() -> dict[str, Any]:
    return json.loads(DATA.read_text())["answers"]


def vectors(answers: dict[str, Any]) -> dict[str, list[tuple[dict[str, str], float]]]:
    return {name: parse_vector(body["data"]) for name, body in answers.items()}


def with_ages(answers: dict[str, Any], age: float, *, node: bool, tasks: bool) -> dict[str, Any]:
    """The recorded answers with the node's (and/or its tasks') newest sample
    ``age`` seconds old, and their live series gone (what Prometheus answers
    once a node stops answering: staleness markers end the series)."""
    out = json.loads(json.dumps(answers))
    if node:
        for item in out["node_age"]["data"]["result"]:
            item["value"][1] = str(age)
        for name in ("node_cpu", "node_mem_available", "node_load1"):
            out[name]["data"]["result"] = []
    if tasks:
        for item in out["task_age"]["data"]["result"]:
            item["value"][1] = str(age)
        for name in ("task_cpu", "task_info"):
            out[name]["data"]["result"] = []
        out["targets"]["data"]["result"] = []
    return out


def test_every_query_was_recorded() -> None:
    assert set(recorded()) == set(QUERIES)


def test_node_from_the_node_exporter() -> None:
    # recorded just after a redeploy replaced the node exporter's task: the
    # old instance (its last sample 5 min old) is still in node_info
    assert len(recorded()["node_info"]["data"]["result"]) == 2
    nodes, _tasks, _health = shape(vectors(recorded()))
    assert [n.node for n in nodes] == ["swmonsw-node-1"]
    node = nodes[0]
    assert not node.stale and node.age_seconds is not None and node.age_seconds < STALE_AFTER
    assert node.cpu_percent is not None and 0.0 <= node.cpu_percent <= 100.0
    assert node.mem_total and node.mem_used and 0 < node.mem_used < node.mem_total
    assert node.load1 is not None and node.load1 >= 0


def test_tasks_from_the_stack_exporter_labelled_with_their_node() -> None:
    _nodes, tasks, _health = shape(vectors(recorded()))
    services = {t.service for t in tasks}
    # every service of the stack has a task on the one node
    assert {"backend", "db", "redis", "nginx", "prometheus", "worker", "stack_exporter"} <= services
    assert {t.node for t in tasks} == {"swmonsw-node-1"}
    backend = next(t for t in tasks if t.service == "backend")
    assert backend.short_name == "backend.1"
    assert backend.mem_limit == 384 * 1024 * 1024  # the stack file's limit
    assert backend.mem_usage and 0 < backend.mem_usage < backend.mem_limit
    assert backend.cpu_percent is not None and backend.cpu_percent >= 0
    exporter = next(t for t in tasks if t.service == "node_exporter")
    assert exporter.short_name == "node_exporter.swmonsw-node-1"  # global: named by node


def test_health_per_task_joins_the_scrape_by_address() -> None:
    _nodes, _tasks, health = shape(vectors(recorded()))
    by_service = {h.service: h for h in health}
    backend = by_service["backend"]
    assert backend.name == "backend.1" and backend.node == "swmonsw-node-1"
    assert backend.scrape == "up" and backend.address.endswith(":8000")
    assert backend.health == "healthy"
    assert backend.age_seconds is not None and backend.age_seconds < STALE_AFTER
    assert by_service["worker"].scrape == "up"
    # health-checked, not scraped per task: the engine's status only
    assert by_service["db"].scrape is None and by_service["db"].health == "healthy"
    # neither scraped nor health-checked (node_exporter has no check): left out
    assert "market-sim" not in by_service or by_service["market-sim"].health != "none"
    # every target was claimed by a task
    assert all(h.task for h in health)


def test_a_scrape_target_no_task_claims_is_still_shown() -> None:
    answers = recorded()
    answers["task_info"]["data"]["result"] = []
    _n, _t, health = shape(vectors(answers))
    assert {(h.service, h.scrape) for h in health} == {("backend", "up"), ("worker", "up")}
    assert all(h.name == "" and h.address for h in health)


def test_a_node_gone_quiet_is_stale_with_its_tasks() -> None:
    nodes, tasks, health = shape(vectors(with_ages(recorded(), 75.0, node=True, tasks=True)))
    assert nodes[0].stale and nodes[0].age_seconds == 75.0
    assert nodes[0].cpu_percent is None and nodes[0].mem_total  # the last total is kept
    # its tasks: the last memory figure, no CPU (no rate without samples), stale
    assert tasks and all(t.stale and t.cpu_percent is None for t in tasks)
    assert any(t.service == "backend" and t.mem_usage for t in tasks)
    assert health == []  # no current info, no targets: nothing claimed


def test_tasks_that_ended_on_a_live_node_are_left_out() -> None:
    _n, tasks, _h = shape(vectors(with_ages(recorded(), 75.0, node=False, tasks=True)))
    assert tasks == []


def test_fresh_just_under_the_limit() -> None:
    nodes, tasks, _h = shape(vectors(with_ages(recorded(), STALE_AFTER, node=True, tasks=True)))
    assert not nodes[0].stale and all(not t.stale for t in tasks)


def test_nothing_recorded_yet() -> None:
    assert shape({}) == ([], [], [])


@pytest.mark.parametrize(
    ("container", "service", "node", "short"),
    [
        ("investment_backend.3.abc", "backend", "n1", "backend.3"),
        ("investment_node_exporter.kq1x.abc", "node_exporter", "n2", "node_exporter.n2"),
        ("weird", "x", "", "x"),
    ],
)
def test_task_short_name(container: str, service: str, node: str, short: str) -> None:
    assert task_short_name(container, service, node) == short


class FakeProm:
    """Answers each query from the recorded answers, or fails them all."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = {QUERIES[n]: parse_vector(body["data"]) for n, body in answers.items()}
        self.down = False
        self.calls = 0

    async def query(self, expr: str, at: Any = None) -> list[tuple[dict[str, str], float]]:
        self.calls += 1
        if self.down:
            raise PromError("Prometheus: not reachable (connection refused)")
        return self.answers[expr]

    async def aclose(self) -> None:
        pass


def settings(**kw: Any) -> Settings:
    return Settings(
        mode="swarm",
        prometheus_url="http://127.0.0.1:30090",
        monitoring_password=SecretStr("pw"),
        **kw,
    )


def test_source_answers_then_fails_then_recovers() -> None:
    fake = FakeProm(recorded())
    src = SwarmStatsSource(settings(), clock=lambda: NOW, client=fake)  # type: ignore[arg-type]

    async def run() -> None:
        snap = await src.poll()
        assert isinstance(snap, SwarmStatsSnapshot) and snap.available
        assert snap.where == "Prometheus at 127.0.0.1:30090"
        assert [n.node for n in snap.nodes] == ["swmonsw-node-1"] and snap.tasks and snap.health
        fake.down = True
        with pytest.raises(PrometheusUnavailable) as info:
            await src.poll()
        # one line naming where, no credential; no snapshot: the last good one stays
        assert str(info.value) == (
            "Prometheus at 127.0.0.1:30090: not reachable (connection refused)"
        )
        assert info.value.snapshot is None
        fake.down = False
        again = await src.poll()
        assert again is not None and again.available and again.nodes

    asyncio.run(run())


def test_source_without_monitoring_says_why() -> None:
    src = SwarmStatsSource(
        Settings(mode="swarm", prometheus_url="http://127.0.0.1:30090", monitoring_password=None),
        clock=lambda: NOW,
    )
    snap = asyncio.run(src.poll())
    assert snap is not None and not snap.available
    assert snap.reason is not None and "no monitoring credential" in snap.reason


def test_source_asks_nothing_of_a_compose_stack() -> None:
    fake = FakeProm(recorded())
    src = SwarmStatsSource(settings().model_copy(update={"mode": "auto"}), client=fake)  # type: ignore[arg-type]
    assert not src.active
    assert asyncio.run(src.poll()) is None and fake.calls == 0
    assert src.note_mode("swarm") is True and src.active
    assert src.note_mode("swarm") is False
    assert asyncio.run(src.poll()) is not None and fake.calls == len(QUERIES)
