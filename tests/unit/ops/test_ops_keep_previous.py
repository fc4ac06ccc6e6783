"""The previous colour kept warm after a deploy: the setting, what
``stackdeck status`` says about the idle colour, and the worker's heartbeat
verdict that ends a worker move (pure logic)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from console.core.config import Settings
from console.core.ops.context import OpContext
from console.core.ops.status import _summary
from console.core.ops.steps.worker import (
    WORKER_HEARTBEAT_MAX_AGE_S,
    heartbeat_verdict,
    workers_wanted,
)


@pytest.mark.parametrize(
    ("value", "keep"),
    [(None, True), ("true", True), ("1", True), ("false", False), ("0", False), ("no", False)],
)
def test_keep_previous_colour_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str | None, keep: bool
) -> None:
    _no_stack_environment(tmp_path, monkeypatch)
    if value is not None:
        monkeypatch.setenv("STACKDECK_KEEP_PREVIOUS_COLOUR", value)
    ctx = OpContext.from_settings(Settings(repo_root=tmp_path, project="kp"))
    assert ctx.keep_previous_colour is keep


def _no_stack_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("STACKDECK_") or key in ("STACK_NAME", "HTTP_PORT", "RUN_DIR"):
            monkeypatch.delenv(key, raising=False)
    (tmp_path / "config-home").mkdir(exist_ok=True)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config-home"))


def test_keep_previous_colour_from_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_stack_environment(tmp_path, monkeypatch)
    assert Settings(repo_root=tmp_path).keep_previous_colour is True
    assert OpContext.from_settings(Settings(repo_root=tmp_path)).keep_previous_colour is True
    monkeypatch.setenv("STACKDECK_KEEP_PREVIOUS_COLOUR", "false")
    settings = Settings(repo_root=tmp_path)
    assert settings.keep_previous_colour is False
    assert OpContext.from_settings(settings).keep_previous_colour is False
    monkeypatch.delenv("STACKDECK_KEEP_PREVIOUS_COLOUR")
    toml = tmp_path / "config.toml"
    toml.write_text("keep_previous_colour = false\n")
    monkeypatch.setenv("STACKDECK_CONFIG", str(toml))
    assert Settings(repo_root=tmp_path).keep_previous_colour is False


def _status(idle: dict[str, Any]) -> dict[str, Any]:
    colours = {
        "blue": {"state": "running", "health": "healthy", "version": "v2", "serving": True},
        "green": {"serving": False, **idle},
    }
    return {
        "stack": "kp",
        "containers": [{"name": "x"}],
        "serving_colour": "blue",
        "serving_version": "v2",
        "colours": colours,
        "health": {"status": 200},
    }


def test_status_says_whether_a_rollback_is_instant() -> None:
    warm = _summary(_status({"state": "running", "health": "healthy", "version": "v1"}))
    assert "green v1 running, out of the upstream: instant rollback target" in warm
    same = _summary(_status({"state": "running", "health": "healthy", "version": "v2"}))
    assert "green v2 running, out of the upstream (the version blue serves)" in same
    starting = _summary(_status({"state": "running", "health": "starting", "version": "v1"}))
    assert "green v1 running, out of the upstream, health starting" in starting
    stopped = _summary(_status({"state": "exited", "health": None, "version": "v1"}))
    assert "green v1 exited: a rollback starts it and waits for its health first" in stopped
    missing = _summary(
        _status({"state": "missing", "health": None, "version": None, "slot_version": "v1"})
    )
    assert any(line.startswith("green: no container (deploy.env names v1)") for line in missing)


def _beat(**kw: Any) -> str:
    beat = {"epoch": 1000.0, "worker": "abc123def456:7", "version": "v2", "cycles": 0}
    beat.update(kw)
    return json.dumps(beat)


def test_heartbeat_of_the_new_worker_ends_the_move() -> None:
    why = heartbeat_verdict(_beat(), "abc123def456", "v2", now=1003.0)
    assert why and "v2" in why and "3 s old" in why
    assert heartbeat_verdict(_beat().encode(), "abc123def456", "v2", now=1003.0)


@pytest.mark.parametrize(
    ("raw", "hostname", "now"),
    [
        (None, "abc123def456", 1001.0),  # no heartbeat yet
        ("", "abc123def456", 1001.0),
        ("{torn", "abc123def456", 1001.0),
        ('["a list"]', "abc123def456", 1001.0),
        (_beat(epoch="soon"), "abc123def456", 1001.0),
        (_beat(worker="0ld0c0ntainer:7"), "abc123def456", 1001.0),  # the old worker's last beat
        (_beat(version="v1"), "abc123def456", 1001.0),  # another version
        (_beat(), "abc123def456", 1000.0 + WORKER_HEARTBEAT_MAX_AGE_S + 1),  # too old
        (_beat(), "", 1001.0),  # hostname unknown
    ],
)
def test_heartbeats_that_do_not_count(raw: str | None, hostname: str, now: float) -> None:
    assert heartbeat_verdict(raw, hostname, "v2", now) is None


@pytest.mark.parametrize(
    ("env", "running_replicas", "want"),
    [
        ({}, 0, 1),  # a deploy.env of before worker replicas: the one worker
        ({}, 2, 3),  # no count kept: what runs
        ({"WORKER_REPLICAS": "2"}, 0, 2),
        ({"WORKER_REPLICAS": "0"}, 0, 0),  # scaled to 0
        ({"WORKER_REPLICAS": "two"}, 1, 2),  # unreadable: what runs
        ({"WORKER_REPLICAS": "-1"}, 0, 1),
    ],
)
def test_workers_wanted_from_deploy_env(env: dict, running_replicas: int, want: int) -> None:
    assert workers_wanted(env, running_replicas) == want
