"""Prometheus' rules and Alertmanager's silences as the console's alerts
(console/core/sources/prometheus.py), on the stack's real rules file and on
answers recorded from the bundled stack (tests/unit/core/data/prom/)."""

from __future__ import annotations

import copy
import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from console.core.sources.prometheus import (
    NOTICE_ALERT,
    alert_subject,
    alerts_from_rules,
    parse_threshold,
    parse_time,
    silences_from_alertmanager,
)
from tests.unit.core.conftest import DATA

RULES_FILE = Path(__file__).parents[3] / "compose" / "monitoring" / "rules" / "alerts.yml"
PROM = DATA / "prom"

THRESHOLDS = {
    "HighCPUUsage": 80,
    "HighMemoryUsage": 85,
    "HighAPIResponseTime": 2,
    "CostBudgetExceeded": 1.67,
    "HighAPIErrorRate": 0.05,
    "ServingColourDown": 0,  # `up == 0 and on (colour) serving == 1`: the 1 selects
    "ServiceDown": 0,
    "ContainerHighCPU": 0.8,
    "ContainerHighMemory": 0.9,  # not the `> 0` guarding the division
    "ProviderQuotaNearlyExhausted": 0.9,
    "BackupTooOld": 26 * 3600,
    "DiskNearlyFull": 0.10,  # `<`, and matchers holding `!~` are not comparisons
    "EmergencyRateLimitOn": 1,
}


def rules_file() -> dict[str, str]:
    doc = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))
    return {r["alert"]: r["expr"] for g in doc["groups"] for r in g["rules"] if "alert" in r}


def recorded(name: str) -> Any:
    return json.loads((PROM / name).read_text(encoding="utf-8"))


def recorded_rules() -> list[dict[str, Any]]:
    data = recorded("rules.json")["data"]
    return [r for g in data["groups"] for r in g["rules"]]


def test_every_rule_of_the_rules_file_has_its_threshold() -> None:
    exprs = rules_file()
    assert set(exprs) == set(THRESHOLDS)  # a new rule needs its line here
    for name, expr in exprs.items():
        assert parse_threshold(expr) == pytest.approx(THRESHOLDS[name]), (name, expr)


def test_thresholds_of_the_queries_as_prometheus_renders_them() -> None:
    for rule in recorded_rules():
        assert parse_threshold(rule["query"]) == pytest.approx(THRESHOLDS[rule["name"]])


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("x > bool 3", 3.0),
        ("x >= 1e3", 1000.0),
        ("x < -0.5", -0.5),
        ('x{a="> 9"} > 4', 4.0),  # a comparison inside a string is no comparison
        ("(x > 0) / y > 0.75 unless z == 1", 0.75),
        ("rate(x[5m])", math.nan),
        ("", math.nan),
    ],
)
def test_threshold_edge_cases(expr: str, expected: float) -> None:
    got = parse_threshold(expr)
    assert (math.isnan(got) and math.isnan(expected)) or got == expected


def test_times_with_nanoseconds() -> None:
    assert parse_time("2026-12-02T16:34:46.251821123Z") == datetime(
        2026, 12, 2, 16, 34, 46, 251821, tzinfo=UTC
    )
    assert parse_time("2026-12-02T16:34:46Z") == datetime(2026, 12, 2, 16, 34, 46, tzinfo=UTC)
    assert parse_time("soon") is None
    assert parse_time(None) is None


def test_subject_is_the_most_specific_label() -> None:
    labels = {"service": "backend_green", "colour": "green", "route": "/api/x", "method": "GET"}
    assert alert_subject(labels) == "GET /api/x"
    assert alert_subject({"service": "host"}) == "host"
    assert alert_subject({"service": "backend_blue", "colour": "blue"}) == "blue"
    assert alert_subject({"name": "sd_db_prod", "service": "db"}) == "sd_db_prod"
    assert alert_subject({"alertname": "X"}) == "stack"


def test_recorded_firing_alert_joined_with_its_silence() -> None:
    alerts = alerts_from_rules(
        recorded_rules(), recorded("am_alerts.json"), recorded("am_silences.json")
    )
    assert len(alerts) == 1
    a = alerts[0]
    assert (a.rule, a.subject, a.firing, a.source) == ("BackupTooOld", "db", True, "prometheus")
    assert a.threshold == 93600
    assert a.for_seconds == 600
    assert a.value > 93600
    assert a.message.startswith("The newest backup is")
    assert a.pending_since == datetime(2026, 12, 2, 16, 34, 46, 251821, tzinfo=UTC)
    assert a.labels == {"alertname": "BackupTooOld", "service": "db", "severity": "warning"}
    assert a.silenced_by == ["b9f29f20-1b03-4355-a5e7-a6fd7978bab2"]
    # without Alertmanager's view, no silence is claimed
    assert alerts_from_rules(recorded_rules())[0].silenced_by == []


def test_pending_alerts_are_matched_against_the_active_silences() -> None:
    rules = copy.deepcopy(recorded_rules())
    latency = next(r for r in rules if r["name"] == "HighAPIResponseTime")
    labels = {
        "alertname": "HighAPIResponseTime",
        "colour": "green",
        "method": "GET",
        "route": "/api/stocks/prices",
        "service": "backend_green",
        "severity": "warning",
    }
    latency["alerts"] = [
        {
            "labels": labels,
            "annotations": {"summary": "p95 of GET /api/stocks/prices on green above 2 s"},
            "state": "pending",
            "activeAt": "2026-12-02T16:50:00.5Z",
            "value": "2.5e+00",
        },
        {"labels": {**labels, "colour": "blue"}, "state": "inactive", "activeAt": "x"},
    ]
    notice = {
        "name": NOTICE_ALERT,
        "query": "vector(1)",
        "alerts": [
            {
                "labels": {"alertname": NOTICE_ALERT},
                "state": "firing",
                "activeAt": "2026-12-02T16:00:00Z",
            }
        ],
    }
    silences = [
        *recorded("am_silences.json"),
        {
            "id": "colour-start",
            "status": {"state": "active"},
            "matchers": [
                {"name": "alertname", "value": "HighAPI.*", "isRegex": True, "isEqual": True},
                {"name": "colour", "value": "green", "isRegex": False, "isEqual": True},
            ],
            "startsAt": "2026-12-02T16:49:00Z",
            "endsAt": "2026-12-02T17:00:00Z",
            "createdBy": "stackdeck deploy",
            "comment": "bake window",
        },
        {
            "id": "over",
            "status": {"state": "expired"},
            "matchers": [{"name": "alertname", "value": "HighAPIResponseTime"}],
            "startsAt": "2026-12-02T10:00:00Z",
            "endsAt": "2026-12-02T11:00:00Z",
        },
    ]
    alerts = alerts_from_rules([*rules, notice], recorded("am_alerts.json"), silences)
    assert [(a.rule, a.firing) for a in alerts] == [
        ("BackupTooOld", True),  # firing first
        ("HighAPIResponseTime", False),
    ]
    pending = alerts[1]
    assert pending.subject == "GET /api/stocks/prices"
    assert (pending.value, pending.threshold, pending.for_seconds) == (2.5, 2.0, 120)
    assert pending.silenced_by == ["colour-start"]  # the expired one mutes nothing
    shown = silences_from_alertmanager(silences)
    assert [(s.id, s.state) for s in shown] == [
        ("colour-start", "active"),  # the soonest to end first
        ("b9f29f20-1b03-4355-a5e7-a6fd7978bab2", "active"),
    ]
    assert shown[0].matchers == "alertname=~HighAPI.*, colour=green"
    assert shown[1].created_by == "root" and shown[1].comment == "fixture"
