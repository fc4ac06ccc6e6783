"""The operation notice posted to Alertmanager (pure parts)."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

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
