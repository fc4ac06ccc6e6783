"""Audit redaction, JSON-lines files, deploy.env, nginx's active file, bake statistics."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from console.core.ops.audit import append_jsonl, audit, read_jsonl, redact_params
from console.core.ops.context import SURGE, backend_service
from console.core.ops.http import BakeStats, Probe, percentile
from console.core.ops.nginx import parse_active, parse_frontend, parse_target, render_active
from console.core.ops.statefiles import atomic_write, read_deploy_env, update_deploy_env

SECRET = "s3cr3t-Value-0123456789"


def test_redact_params_masks_by_name_by_value_and_in_urls() -> None:
    params = {
        "version": "v1.2.3",
        "password": "hunter2",
        "admin_token": "abc",
        "pg_dsn": "postgresql://postgres:pw@db/x",
        "note": f"uses {SECRET} inside",
        "url": "redis://:topsecretpw@redis:6379/0",
        "nested": {"api_key": "k", "ok": 1},
        "list": [f"a {SECRET}", 2],
        "path": Path("/var/lib/x"),
        "empty_password": "",
        "confirm": "investment_db",
    }
    out = redact_params(params, [SECRET])
    dumped = json.dumps(out)
    for leaked in ("hunter2", SECRET, "topsecretpw", ":pw@"):
        assert leaked not in dumped
    assert out["version"] == "v1.2.3"
    assert out["password"] == "***" and out["admin_token"] == "***" and out["pg_dsn"] == "***"
    assert out["nested"] == {"api_key": "***", "ok": 1}
    assert out["path"] == "/var/lib/x"
    assert out["empty_password"] == ""
    assert out["confirm"] == "investment_db"


def test_audit_lines_append_and_never_rewrite(tmp_path: Path) -> None:
    path = tmp_path / "state" / "audit.log"
    op = {"user": "alice", "ssh_client": "10.1.1.1", "host": "h", "pid": 1}
    audit(
        path,
        event="start",
        op="deploy",
        op_id="1",
        operator=op,
        params={"password": SECRET},
        secrets=[SECRET],
    )
    audit(
        path,
        event="end",
        op="deploy",
        op_id="1",
        operator=op,
        params={},
        result="failed",
        message=f"failed with {SECRET}",
        secrets=[SECRET],
        duration_s=1.23456,
    )
    text = path.read_text()
    assert SECRET not in text
    lines = read_jsonl(path)
    assert [r["event"] for r in lines] == ["start", "end"]
    assert lines[1]["result"] == "failed" and lines[1]["duration_s"] == 1.235
    assert lines[0]["user"] == "alice" and lines[0]["ssh_client"] == "10.1.1.1"
    assert oct(path.stat().st_mode & 0o777) == "0o640"
    # a torn last line (power cut mid-write) is skipped, the rest is read
    with open(path, "a") as fh:
        fh.write('{"event": "sta')
    assert len(read_jsonl(path)) == 2
    append_jsonl(path, {"event": "x"})  # starts on a fresh line after the torn one
    assert [r["event"] for r in read_jsonl(path)] == ["start", "end", "x"]
    assert read_jsonl(path, limit=1) == [{"event": "x"}]
    assert read_jsonl(tmp_path / "missing") == []


def test_append_uses_o_append(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    flags_seen: list[int] = []
    real_open = os.open

    def spy(path: str | os.PathLike[str], flags: int, mode: int = 0o777) -> int:
        flags_seen.append(flags)
        return real_open(path, flags, mode)

    monkeypatch.setattr(os, "open", spy)
    append_jsonl(tmp_path / "a.log", {"k": 1})
    assert flags_seen and flags_seen[0] & os.O_APPEND and not flags_seen[0] & os.O_TRUNC


def test_deploy_env_update_keeps_comments_and_order(tmp_path: Path) -> None:
    path = tmp_path / "deploy.env"
    path.write_text("# header\nBLUE_VERSION=v1.0.0\nGREEN_VERSION=v1.0.0\n\nACTIVE_COLOUR=blue\n")
    after = update_deploy_env(path, {"GREEN_VERSION": "v2.0.0", "WORKER_VERSION": "v2.0.0"})
    assert after == {
        "BLUE_VERSION": "v1.0.0",
        "GREEN_VERSION": "v2.0.0",
        "ACTIVE_COLOUR": "blue",
        "WORKER_VERSION": "v2.0.0",
    }
    assert path.read_text().splitlines() == [
        "# header",
        "BLUE_VERSION=v1.0.0",
        "GREEN_VERSION=v2.0.0",
        "",
        "ACTIVE_COLOUR=blue",
        "WORKER_VERSION=v2.0.0",
    ]
    assert not list(tmp_path.glob(".*tmp"))  # no temp file left behind
    assert read_deploy_env(tmp_path / "none") == {}


def test_atomic_write_replaces_whole(tmp_path: Path) -> None:
    path = tmp_path / "f.json"
    atomic_write(path, "one\n")
    inode = path.stat().st_ino
    atomic_write(path, "two\n")
    assert path.read_text() == "two\n"
    assert path.stat().st_ino != inode  # renamed over, never written in place


def test_active_file_rendering() -> None:
    assert render_active("green") == "set $active_backend backend_green;\n"
    assert parse_active(render_active("blue")) == "blue"
    assert parse_active("  set   $active_backend   backend_green ;  \n") == "green"
    assert parse_active("") is None
    assert (
        parse_active("set $active_backend backend_blue;\nset $active_backend backend_green;\n")
        is None
    )
    assert parse_active("set $active_backend backend_red;") is None
    with pytest.raises(ValueError):
        render_active("red")
    with pytest.raises(ValueError):
        render_active("blue; include /etc/passwd")


def test_active_file_names_a_colours_surge() -> None:
    """A rolling deploy's surge serves for its colour: the target has the
    slot, the serving colour stays the colour."""
    text = render_active("green", "surge")
    assert text == "set $active_backend backend_green_surge;\n"
    assert parse_target(text) == ("green", "surge")
    assert parse_target(render_active("blue")) == ("blue", None)
    assert parse_active(text) == "green"
    assert parse_target("set $active_backend backend_blue_other;") is None
    # the colour's own container and its surge at once: ambiguous
    assert parse_target(render_active("blue") + render_active("blue", "surge")) is None
    with pytest.raises(ValueError):
        render_active("blue", "canary")
    assert backend_service("blue") == "backend_blue"
    assert backend_service("green", SURGE) == "backend_green_surge"


def test_active_file_names_the_frontends_colour() -> None:
    """The second line: the page's colour. Old files (backend line only) mean
    the backend's colour; the backend's parsing ignores the frontend line."""
    both = render_active("green", frontend="blue")
    assert both == "set $active_backend backend_green;\nset $active_frontend frontend_blue;\n"
    assert parse_active(both) == "green" and parse_target(both) == ("green", None)
    assert parse_frontend(both) == "blue"
    assert render_active(None, frontend="green") == "set $active_frontend frontend_green;\n"
    assert parse_frontend("set $active_backend backend_green;\n") == "green"
    assert parse_frontend("set $active_backend backend_blue_surge;\n") == "blue"
    assert parse_frontend("  set  $active_frontend  frontend_green ; \n") == "green"
    assert parse_frontend("") is None
    two = "set $active_frontend frontend_blue;\nset $active_frontend frontend_green;\n"
    assert parse_frontend(two) is None
    assert parse_frontend("set $active_frontend frontend_red;\n") is None
    with pytest.raises(ValueError):
        render_active("blue", frontend="red")
    with pytest.raises(ValueError):
        render_active(None)


def _probe(status: int | None, ms: float, version: str = "v2") -> Probe:
    body = {"version": version, "colour": "green"} if status else None
    return Probe("/api/health", status, ms, body=body, error=None if status else "ConnectError")


def test_percentile_nearest_rank() -> None:
    assert percentile([], 95) is None
    assert percentile([5.0], 95) == 5.0
    values = [float(i) for i in range(1, 101)]
    assert percentile(values, 95) == 95.0
    assert percentile(values, 100) == 100.0


def test_bake_verdicts() -> None:
    good = BakeStats("v2")
    for _ in range(50):
        good.add(_probe(200, 10))
    assert good.verdict(2000, 0.01) is None
    assert good.summary()["p95_ms"] == 10.0

    slow = BakeStats("v2")
    for i in range(20):
        slow.add(_probe(200, 3000 if i % 2 else 10))
    verdict = slow.verdict(2000, 0.01)
    assert verdict is not None and "p95 latency 3000 ms" in verdict

    errors = BakeStats("v2")
    for i in range(20):
        errors.add(_probe(502 if i < 2 else 200, 10))
    verdict = errors.verdict(2000, 0.01)
    assert verdict is not None and "error rate 10.0% (2/20)" in verdict and "HTTP 502" in verdict

    wrong = BakeStats("v2")
    for i in range(10):
        wrong.add(_probe(200, 10, "v1" if i == 9 else "v2"))
    verdict = wrong.verdict(2000, 0.5)
    assert verdict is not None and "did not come from v2" in verdict

    few = BakeStats("v2")
    few.add(_probe(200, 1))
    assert "only 1 requests" in str(few.verdict(2000, 0.01))
