"""The alert rules and the monitoring configuration, checked like code with
the tools of the image that runs them (``<prefix>-monitoring``): promtool
checks and unit-tests the rules, the rendered Prometheus and Alertmanager
configurations pass ``promtool check config`` and ``amtool check-config``.
No stack is needed, only the image (scripts/images.sh builds it)."""

from __future__ import annotations

import os
import re
import subprocess

import pytest
import yaml

from tests.conftest import REPO

SITE = REPO / "compose" / "monitoring"
RUNBOOK_ALERTS = {"HighCPUUsage", "HighMemoryUsage", "HighAPIResponseTime", "CostBudgetExceeded"}


def _image() -> str:
    prefix = (
        os.environ.get("IMAGE_PREFIX") or os.environ.get("STACKDECK_TEST_STACK") or "investment"
    )
    return f"{prefix}-monitoring:latest"


def _run(
    *argv: str, env: dict[str, str] | None = None, entrypoint: str | None = None
) -> subprocess.CompletedProcess[str]:
    cmd = ["docker", "run", "--rm", "--network", "none", "-v", f"{SITE}:/etc/monitoring/site:ro"]
    for k, v in (env or {}).items():
        cmd += ["-e", f"{k}={v}"]
    if entrypoint is not None:
        cmd += ["--entrypoint", entrypoint]
    r = subprocess.run([*cmd, _image(), *argv], capture_output=True, text=True, timeout=120)
    return r


@pytest.fixture(scope="module", autouse=True)
def _has_image() -> None:
    r = subprocess.run(["docker", "image", "inspect", _image()], capture_output=True, text=True)
    assert r.returncode == 0, f"no image {_image()}: build it with scripts/images.sh"


def test_promtool_checks_the_rules() -> None:
    r = _run("check", "rules", "/etc/monitoring/site/rules/alerts.yml", entrypoint="promtool")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS: 13 rules found" in r.stdout


def test_promtool_unit_tests_every_rule() -> None:
    r = _run(
        "test", "rules", "/etc/monitoring/site/rules/tests/alerts_test.yml", entrypoint="promtool"
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout


def test_every_rule_has_a_firing_and_a_quiet_case() -> None:
    rules = yaml.safe_load((SITE / "rules" / "alerts.yml").read_text())
    names = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    tests = yaml.safe_load((SITE / "rules" / "tests" / "alerts_test.yml").read_text())["tests"]
    fired: set[str] = set()
    quiet: set[str] = set()
    for t in tests:
        for case in t.get("alert_rule_test", []):
            (fired if case["exp_alerts"] else quiet).add(case["alertname"])
    assert names - fired == set(), "rules never seen firing in alerts_test.yml"
    assert names - quiet == set(), "rules never checked quiet in alerts_test.yml"


def test_the_runbook_rules_are_verbatim() -> None:
    """Expressions, thresholds and ``for`` exactly as the runbook writes them."""
    rules = yaml.safe_load((SITE / "rules" / "alerts.yml").read_text())
    got = {r["alert"]: (r["expr"], r["for"]) for g in rules["groups"] for r in g["rules"]}
    assert got["HighCPUUsage"] == (
        '(100 - (avg(rate(node_cpu_seconds_total{mode="idle"}[5m])) * 100)) > 80',
        "5m",
    )
    assert got["HighMemoryUsage"] == (
        "(node_memory_MemTotal_bytes - node_memory_MemAvailable_bytes) / node_memory_MemTotal_bytes * 100 > 85",
        "5m",
    )
    assert got["HighAPIResponseTime"] == (
        "histogram_quantile(0.95, rate(http_request_duration_seconds_bucket[5m])) > 2",
        "2m",
    )
    assert got["CostBudgetExceeded"] == ("investment_daily_cost_projection > 1.67", "1m")


def test_rendered_prometheus_config_passes_promtool_with_overrides() -> None:
    r = _run(
        "sh",
        "-c",
        "python3 -m platform_services.monitoring.render prometheus"
        " && promtool check config /run/monitoring/prometheus.yml"
        " && promtool check web-config /run/monitoring/web.yml"
        " && grep -A3 'alert: ContainerHighCPU' /run/monitoring/rules/alerts.yml",
        env={"MONITORING_PASSWORD": "pw", "ALERT_FOR_OVERRIDES": "ContainerHighCPU=15s"},
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout
    assert re.search(r"for: 15s", r.stdout), r.stdout


def test_an_override_with_a_typo_stops_prometheus_with_one_line() -> None:
    r = _run(
        "prometheus", env={"MONITORING_PASSWORD": "pw", "ALERT_FOR_OVERRIDES": "HighCPUUsge=15s"}
    )
    assert r.returncode != 0
    assert "ALERT_FOR_OVERRIDES names no alert of the rules: HighCPUUsge" in r.stderr
    assert "Traceback" not in r.stderr


def test_rendered_alertmanager_config_passes_amtool() -> None:
    r = _run(
        "sh",
        "-c",
        "python3 -m platform_services.monitoring.render alertmanager"
        " && amtool check-config /run/monitoring/alertmanager.yml",
        env={"MONITORING_PASSWORD": "pw"},
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout
    assert "- 1 inhibit rules" not in r.stdout  # both inhibit rules loaded
    assert "2 inhibit rules" in r.stdout
