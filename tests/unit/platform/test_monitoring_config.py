"""Pure logic of the monitoring side: the configuration rendered from .env
(render.py), the stack exporter's readings and the alert sink's mail record."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from platform_services.monitoring import render
from platform_services.monitoring.alert_sink import mail_record
from platform_services.monitoring.stack_exporter import (
    last_backup_time,
    memory_working_set,
    serving_colour,
)

RULES = {
    "alerts.yml": {
        "groups": [
            {
                "name": "runbook",
                "rules": [
                    {"alert": "HighCPUUsage", "expr": "x > 80", "for": "5m"},
                    {"alert": "CostBudgetExceeded", "expr": "y > 1.67", "for": "1m"},
                ],
            }
        ]
    }
}


def test_for_overrides_parse_and_reject_bad_pairs() -> None:
    assert render.parse_for_overrides("") == {}
    assert render.parse_for_overrides(" HighCPUUsage=20s, CostBudgetExceeded=1m30s ") == {
        "HighCPUUsage": "20s",
        "CostBudgetExceeded": "1m30s",
    }
    for bad in ("HighCPUUsage", "HighCPUUsage=soon", "=5s", "HighCPUUsage=5"):
        with pytest.raises(render.ConfigError, match="NAME=DURATION"):
            render.parse_for_overrides(bad)


def test_override_replaces_only_the_named_for_and_keeps_the_source() -> None:
    out = render.override_for(RULES, {"HighCPUUsage": "15s"})
    rules = out["alerts.yml"]["groups"][0]["rules"]
    assert rules[0] == {"alert": "HighCPUUsage", "expr": "x > 80", "for": "15s"}
    assert rules[1]["for"] == "1m"
    assert RULES["alerts.yml"]["groups"][0]["rules"][0]["for"] == "5m"  # not mutated


def test_override_naming_no_alert_is_an_error() -> None:
    with pytest.raises(render.ConfigError, match="HighCPUUsge"):
        render.override_for(RULES, {"HighCPUUsge": "15s"})


def test_alertmanager_defaults_route_to_the_local_sink_on_every_channel() -> None:
    cfg = render.alertmanager_config({})
    (team,) = cfg["receivers"]
    assert team["webhook_configs"][0]["url"] == "http://alert_sink:9099/webhook/generic"
    assert team["slack_configs"][0]["api_url"] == "http://alert_sink:9099/webhook/slack"
    assert team["email_configs"][0]["smarthost"] == "alert_sink:2525"
    assert team["email_configs"][0]["require_tls"] is False
    assert "auth_username" not in team["email_configs"][0]
    route = cfg["route"]
    assert (route["group_wait"], route["group_interval"], route["repeat_interval"]) == (
        "30s",
        "5m",
        "4h",
    )
    assert route["group_by"] == ["alertname", "service", "colour"]
    # an operation's notice is its own group: sent after the group wait, not
    # held for the group interval behind the previous operation's
    (ops,) = route["routes"]
    assert ops["matchers"] == ['alertname="StackOperation"']
    assert ops["group_by"] == ["alertname", "op_id"]
    down = cfg["inhibit_rules"][0]
    assert down["equal"] == ["service"]
    assert "ServiceDown" in down["source_matchers"][0]
    assert "HighAPIResponseTime" in down["target_matchers"][0]


def test_alertmanager_for_a_real_team() -> None:
    cfg = render.alertmanager_config(
        {
            "ALERT_WEBHOOK_URL": "",
            "ALERT_SLACK_WEBHOOK_URL": "https://hooks.slack.example/T/B/x",
            "ALERT_EMAIL_TO": "ops@example.org",
            "ALERT_SMTP_SMARTHOST": "smtp.example.org:587",
            "ALERT_SMTP_USERNAME": "alerts",
            "ALERT_SMTP_PASSWORD": "s3cret",
            "ALERT_SMTP_REQUIRE_TLS": "true",
            "ALERT_REPEAT_INTERVAL": "12h",
        }
    )
    (team,) = cfg["receivers"]
    assert "webhook_configs" not in team  # empty URL: channel off
    assert team["slack_configs"][0]["api_url"] == "https://hooks.slack.example/T/B/x"
    email = team["email_configs"][0]
    assert (email["to"], email["auth_username"], email["auth_password"], email["require_tls"]) == (
        "ops@example.org",
        "alerts",
        "s3cret",
        True,
    )
    assert cfg["route"]["repeat_interval"] == "12h"


def test_alertmanager_refuses_no_channel_and_bad_durations() -> None:
    with pytest.raises(render.ConfigError, match="no alert receiver"):
        render.alertmanager_config(
            {"ALERT_WEBHOOK_URL": "", "ALERT_SLACK_WEBHOOK_URL": "", "ALERT_EMAIL_TO": ""}
        )
    with pytest.raises(render.ConfigError, match="ALERT_GROUP_WAIT"):
        render.alertmanager_config({"ALERT_GROUP_WAIT": "half a minute"})


def test_prometheus_config_fills_the_credential_where_asked() -> None:
    site = {
        "scrape_configs": [
            {"job_name": "prometheus", "basic_auth": {}},
            {"job_name": "backend"},
        ],
        "alerting": {"alertmanagers": [{"static_configs": [], "basic_auth": {}}]},
    }
    out = render.prometheus_config(site, "u", "/run/monitoring/password")
    auth = {"username": "u", "password_file": "/run/monitoring/password"}
    assert out["scrape_configs"][0]["basic_auth"] == auth
    assert "basic_auth" not in out["scrape_configs"][1]
    assert out["alerting"]["alertmanagers"][0]["basic_auth"] == auth


def test_web_config_needs_a_password() -> None:
    with pytest.raises(render.ConfigError, match="MONITORING_PASSWORD"):
        render.web_config("u", "")


def test_memory_working_set_as_docker_stats() -> None:
    v1 = {"usage": 1000, "stats": {"total_inactive_file": 300, "inactive_file": 1}}
    v2 = {"usage": 1000, "stats": {"inactive_file": 200}}
    assert memory_working_set(v1) == 700
    assert memory_working_set(v2) == 800
    assert memory_working_set({"usage": 100, "stats": {"inactive_file": 500}}) == 100


def test_serving_colour_from_nginx_upstream_file(tmp_path: Path) -> None:
    f = tmp_path / "active.conf"
    assert serving_colour(f) is None
    f.write_text("set $active_backend backend_green;\n")
    assert serving_colour(f) == "green"
    f.write_text("set $active_backend backend_blue_surge;\n")  # a rolling deploy's surge
    assert serving_colour(f) == "blue"
    f.write_text("garbage\n")
    assert serving_colour(f) is None


def test_last_backup_counts_only_completed_backups(tmp_path: Path) -> None:
    assert last_backup_time(tmp_path / "missing") == 0.0
    (tmp_path / "a.json").write_text("{}")
    (tmp_path / "a.dump").write_bytes(b"x")
    os.utime(tmp_path / "a.json", (1000, 1000))
    (tmp_path / "b.json").write_text("{}")  # no dump: not completed
    os.utime(tmp_path / "b.json", (5000, 5000))
    assert last_backup_time(tmp_path) == 1000


def test_mail_record_keeps_subject_recipients_and_body() -> None:
    raw = (
        b"From: am@x\r\nTo: ops@x\r\nSubject: [FIRING:1] HighCPUUsage\r\n"
        b"Content-Type: text/plain\r\n\r\nalertname = HighCPUUsage\r\n"
    )
    rec = mail_record("am@x", ["ops@x"], raw)
    assert rec["subject"] == "[FIRING:1] HighCPUUsage"
    assert rec["rcpt_to"] == ["ops@x"]
    assert "alertname = HighCPUUsage" in rec["body"]


def test_monitoring_password_from_a_file_on_swarm(tmp_path: Path) -> None:
    """On Swarm the credential is a Docker secret: MONITORING_PASSWORD_FILE."""
    secret = tmp_path / "monitoring_password"
    secret.write_text("from-the-secret\n")
    assert (
        render.monitoring_password({"MONITORING_PASSWORD_FILE": str(secret)}) == "from-the-secret"
    )
    # the variable, when set, wins
    env = {"MONITORING_PASSWORD": "direct", "MONITORING_PASSWORD_FILE": str(secret)}
    assert render.monitoring_password(env) == "direct"
    with pytest.raises(render.ConfigError, match=r"MONITORING_PASSWORD_FILE=.* cannot be read"):
        render.monitoring_password({"MONITORING_PASSWORD_FILE": str(tmp_path / "missing")})
