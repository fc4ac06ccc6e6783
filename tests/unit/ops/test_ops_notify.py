"""The operation notice posted to Alertmanager (pure parts)."""

from __future__ import annotations

import logging
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from console.core.ops import notify


def _alert(**kw: object) -> dict:
    base: dict = dict(
        stack="s",
        name="rollback",
        op_id="abc123",
        result="ok",
        message="rolled back to v1.0.0",
        params={"reason": "p95 too high", "to": "v1.0.0", "ADMIN_TOKEN": "hunter2"},
        operator={"user": "alice", "ssh_client": "10.0.0.5"},
        secrets=["hunter2"],
        now=datetime(2026, 12, 2, 5, 0, tzinfo=UTC),
    )
    base.update(kw)
    return notify.operation_alert(**base)


def test_rollback_notice_names_who_where_and_the_reason() -> None:
    a = _alert()
    assert a["labels"] == {
        "alertname": "StackOperation",
        "severity": "info",
        "service": "stackdeck",
        "stack": "s",
        "op": "rollback",
        "result": "ok",
        "operator": "alice",
        "from": "10.0.0.5",
        "op_id": "abc123",
    }
    assert (
        a["annotations"]["summary"]
        == "rollback ok by alice from 10.0.0.5: rolled back to v1.0.0 (reason: p95 too high)"
    )
    assert "reason=p95 too high" in a["annotations"]["params"]
    assert "hunter2" not in str(a)
    assert a["startsAt"] == "2026-12-02T05:00:00+00:00"
    assert a["endsAt"] == "2026-12-02T05:05:00+00:00"


def test_failed_operation_is_a_warning_from_local() -> None:
    a = _alert(name="vacuum", result="failed", message="VACUUM failed", operator={"user": "bob"})
    assert a["labels"]["severity"] == "warning"
    assert a["labels"]["from"] == "local"
    assert a["annotations"]["summary"].startswith("vacuum FAILED by bob from local")


def test_which_operations_are_notified() -> None:
    assert notify.should_notify("deploy", True, "ok")
    assert notify.should_notify("rollback", True, "ok")
    assert notify.should_notify("emergency-limit", True, "ok")
    assert notify.should_notify("vacuum", True, "failed")
    assert not notify.should_notify("vacuum", True, "ok")
    assert not notify.should_notify("status", False, "failed")
    # silences act on Alertmanager itself: no notice there, even when they fail
    assert not notify.should_notify("silence", True, "failed")
    assert not notify.should_notify("silence-expire", True, "failed")


def test_alertmanager_url_from_env_or_derived() -> None:
    assert notify.alertmanager_url({"ALERTMANAGER_PORT": "9999"}, 80) == "http://127.0.0.1:9999"
    assert notify.alertmanager_url({}, 18080) == "http://127.0.0.1:30080"


def test_no_notice_without_a_monitoring_credential() -> None:
    ctx = SimpleNamespace(env={}, stack="s", http_port=1)
    assert notify.operation_finished(ctx, "deploy", True, "x", "ok", "", {}) is None


def _ctx(mode: str, **env: str) -> SimpleNamespace:
    return SimpleNamespace(env=env, stack="s", http_port=18080, mode=mode)


@pytest.fixture
def swarm_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A swarm's state folder with its monitoring secret (scripts/swarm.sh)."""
    for key in [k for k in os.environ if k.startswith("SWARM_")]:
        monkeypatch.delenv(key)
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "monitoring_password").write_text("swarm-secret\n")
    monkeypatch.setenv("SWARM_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("SWARM_ALERTMANAGER_PORT", "29093")
    return tmp_path


def test_notice_target_per_mode(swarm_state: Path) -> None:
    env = {"MONITORING_PASSWORD": "compose-secret", "ALERTMANAGER_PORT": "9999"}
    # compose: the .env's Alertmanager and password
    assert notify.notice_target(_ctx("compose", **env)) == (
        "http://127.0.0.1:9999",
        ("stackdeck", "compose-secret"),
    )
    # swarm: the swarm's published Alertmanager and its secret, whatever the .env says
    assert notify.notice_target(_ctx("swarm", **env)) == (
        "http://127.0.0.1:29093",
        ("stackdeck", "swarm-secret"),
    )
    # the mode the operation resolved to wins over the context's (auto)
    assert notify.notice_target(_ctx("auto", **env), "swarm") == (
        "http://127.0.0.1:29093",
        ("stackdeck", "swarm-secret"),
    )
    # a swarm needs no password in the .env
    assert notify.notice_target(_ctx("swarm"))[1] == ("stackdeck", "swarm-secret")  # type: ignore[index]


def test_swarm_default_alertmanager_port(
    swarm_state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SWARM_ALERTMANAGER_PORT")
    assert notify.notice_target(_ctx("swarm"))[0] == "http://127.0.0.1:9093"  # type: ignore[index]


def test_unreadable_swarm_secret_is_a_warning_not_a_failure(
    swarm_state: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("SWARM_STATE_DIR", str(swarm_state / "nowhere"))
    ctx = _ctx("swarm", MONITORING_PASSWORD="compose-secret")
    with caplog.at_level(logging.WARNING, logger="console.core.ops.notify"):
        assert notify.operation_finished(ctx, "deploy", True, "x", "ok", "", {}) is None
    assert "operation notice not sent" in caplog.text
    assert "nowhere/secrets/monitoring_password" in caplog.text


def test_unreachable_swarm_alertmanager_is_a_warning(
    swarm_state: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        monkeypatch.setenv("SWARM_ALERTMANAGER_PORT", str(s.getsockname()[1]))
    ctx = SimpleNamespace(
        env={},
        stack="s",
        http_port=1,
        mode="swarm",
        redact=lambda m: m,
        operator=SimpleNamespace(as_dict=lambda: {"user": "alice"}),
        secrets=[],
    )
    with caplog.at_level(logging.WARNING, logger="console.core.ops.notify"):
        t = notify.operation_finished(ctx, "deploy", True, "x", "ok", "deployed", {})
        assert t is not None
        t.join(timeout=notify.TIMEOUT_S + 2)
    assert not t.is_alive()
    assert "operation notice not sent" in caplog.text
