"""Alert rules with Prometheus ``for`` semantics, on a fake clock."""

from __future__ import annotations

from console.core.alerts import COST, CPU, LATENCY, MEMORY, AlertEngine, Rule, default_rules
from console.core.config import Settings
from console.core.models import ContainerStats, CostSnapshot, HealthSnapshot, StatsSnapshot


def _msg(subject: str, value: float, threshold: float) -> str:
    return f"{subject} {value} > {threshold}"


def engine(
    clock, *, for_seconds: float = 300.0, threshold: float = 80.0, stale_after: float = 600.0
):
    return AlertEngine(
        [Rule(CPU, threshold, for_seconds, _msg)], clock=clock, stale_after=stale_after
    )


def test_below_threshold_is_no_alert(clock) -> None:
    e = engine(clock)
    e.observe(CPU, {"db": 80.0, "nginx": 10.0})  # equal is not above
    assert e.snapshot().alerts == []


def test_pending_then_firing_after_for_duration(clock) -> None:
    e = engine(clock)
    start = clock.now
    e.observe(CPU, {"db": 90.0})
    [alert] = e.snapshot().alerts
    assert (alert.rule, alert.subject, alert.firing) == (CPU, "db", False)
    assert alert.pending_since == start

    clock.advance(299)
    e.observe(CPU, {"db": 95.0})
    [alert] = e.snapshot().alerts
    assert not alert.firing
    assert alert.value == 95.0

    clock.advance(1)  # exactly the for duration
    e.observe(CPU, {"db": 91.0})
    [alert] = e.snapshot().alerts
    assert alert.firing
    assert alert.pending_since == start
    assert alert.threshold == 80.0
    assert alert.message == "db 91.0 > 80.0"


def test_clearing_resets_the_clock(clock) -> None:
    e = engine(clock)
    e.observe(CPU, {"db": 90.0})
    clock.advance(400)
    e.observe(CPU, {"db": 90.0})
    assert e.firing == [(CPU, "db")]

    clock.advance(10)
    e.observe(CPU, {"db": 50.0})  # condition clears
    assert e.snapshot().alerts == []

    clock.advance(10)
    restart = clock.now
    e.observe(CPU, {"db": 99.0})  # breach again: pending from scratch
    [alert] = e.snapshot().alerts
    assert not alert.firing
    assert alert.pending_since == restart
    clock.advance(299)
    e.observe(CPU, {"db": 99.0})
    assert not e.snapshot().alerts[0].firing


def test_missing_subject_or_none_resets(clock) -> None:
    e = engine(clock)
    e.observe(CPU, {"db": 90.0, "worker": 90.0})
    clock.advance(100)
    e.observe(CPU, {"db": 90.0, "worker": None})  # worker: no data
    assert [a.subject for a in e.snapshot().alerts] == ["db"]
    e.observe(CPU, {})  # db gone (container removed)
    assert e.snapshot().alerts == []


def test_subjects_are_independent_and_firing_sorts_first(clock) -> None:
    e = engine(clock, for_seconds=60)
    e.observe(CPU, {"db": 90.0})
    clock.advance(30)
    e.observe(CPU, {"db": 90.0, "nginx": 85.0})
    clock.advance(30)
    e.observe(CPU, {"db": 90.0, "nginx": 85.0})
    alerts = e.snapshot().alerts
    assert [(a.subject, a.firing) for a in alerts] == [("db", True), ("nginx", False)]


def test_zero_for_fires_at_once(clock) -> None:
    e = engine(clock, for_seconds=0)
    e.observe(CPU, {"db": 81.0})
    assert e.snapshot().alerts[0].firing


def test_stale_input_drops_the_alert(clock) -> None:
    e = engine(clock, for_seconds=0, stale_after=120)
    e.observe(CPU, {"db": 99.0})
    clock.advance(120)
    assert len(e.snapshot().alerts) == 1
    clock.advance(1)  # the stats source went silent
    assert e.snapshot().alerts == []


def test_unknown_rule_is_ignored(clock) -> None:
    e = engine(clock)
    e.observe("NoSuchRule", {"x": 1e9})
    assert e.snapshot().alerts == []


def test_default_rules_follow_settings(clean_env) -> None:
    settings = Settings(
        repo_root=clean_env,
        alerts={"cpu": {"threshold": 90, "for_seconds": "10m"}, "memory": {"enabled": False}},
    )
    rules = {r.name: r for r in default_rules(settings)}
    assert set(rules) == {CPU, LATENCY, COST}
    assert (rules[CPU].threshold, rules[CPU].for_seconds) == (90.0, 600.0)
    assert (rules[LATENCY].threshold, rules[LATENCY].for_seconds) == (2.0, 120.0)
    assert (rules[COST].threshold, rules[COST].for_seconds) == (1.67, 60.0)


def test_seed_rules_from_snapshots(clock, clean_env) -> None:
    e = AlertEngine.from_settings(Settings(repo_root=clean_env), clock=clock)

    def stats(cpu: float, mem: float) -> StatsSnapshot:
        return StatsSnapshot(
            taken_at=clock(),
            host_cpus=2,
            host_mem_total=1000,
            total_cpu_percent=cpu,
            total_mem_usage=100,
            containers=[
                ContainerStats(
                    name="investment_db_prod",
                    service="db",
                    cpu_percent=cpu,
                    cpu_limit=1.0,
                    mem_usage=100,
                    mem_limit=110,
                    mem_percent=mem,
                )
            ],
        )

    # db at 90 % of its one-CPU limit (stack: 45 % of 2 host CPUs), memory 91 %
    for _ in range(6):
        e.feed_stats(stats(90.0, 91.0))
        e.feed_health(HealthSnapshot(taken_at=clock(), p95_seconds=2.5))
        e.feed_cost(
            CostSnapshot(
                taken_at=clock(),
                month_to_date=30.0,
                daily_projection=1.92,
                month_end_projection=55.0,
            )
        )
        clock.advance(60)
    alerts = {(a.rule, a.subject): a for a in e.snapshot().alerts}
    assert set(alerts) == {(CPU, "db"), (MEMORY, "db"), (LATENCY, "api"), (COST, "budget")}
    # after 5 minutes of samples: CPU and memory (5 m) fire, p95 (2 m) and cost (1 m) too
    assert all(a.firing for a in alerts.values())
    assert alerts[(CPU, "db")].value == 90.0
    assert "1.92" in alerts[(COST, "budget")].message

    # the p95 clears when there is no traffic (None), the cost when back under target
    e.feed_health(HealthSnapshot(taken_at=clock(), p95_seconds=None))
    e.feed_cost(
        CostSnapshot(
            taken_at=clock(), month_to_date=30, daily_projection=1.5, month_end_projection=48
        )
    )
    assert {a.rule for a in e.snapshot().alerts} == {CPU, MEMORY}


def test_cpu_is_relative_to_the_limit(clock, clean_env) -> None:
    e = AlertEngine.from_settings(
        Settings(repo_root=clean_env, alerts={"cpu": {"for_seconds": 0}}), clock=clock
    )
    snap = StatsSnapshot(
        taken_at=clock(),
        host_cpus=2,
        containers=[
            # 45 % of one core with a half-core limit: 90 % of what it may use
            ContainerStats(
                name="a",
                service="nginx",
                cpu_percent=45.0,
                cpu_limit=0.5,
                mem_usage=1,
                mem_limit=10,
                mem_percent=10,
            ),
            # 150 % of one core without a limit on 2 CPUs: 75 %
            ContainerStats(
                name="b",
                service="worker",
                cpu_percent=150.0,
                mem_usage=1,
                mem_limit=10,
                mem_percent=10,
            ),
        ],
        total_cpu_percent=195.0,
    )
    e.feed_stats(snap)
    firing = {a.subject: a.value for a in e.snapshot().alerts if a.rule == CPU}
    assert firing == {"nginx": 90.0, "stack": 97.5}
