"""Swarm mode finds the swarm's Prometheus and its credential (scripts/swarm.sh's
port and secret); compose mode is untouched, and STACKDECK_* still wins."""

from __future__ import annotations

from pathlib import Path

import pytest

from console.core.config import Settings


@pytest.fixture
def swarm_env(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key in (
        "SWARM_NAME",
        "SWARM_STATE_DIR",
        "SWARM_PROMETHEUS_PORT",
        "SWARM_ALERTMANAGER_PORT",
    ):
        monkeypatch.delenv(key, raising=False)
    secrets = clean_env / "swarm-state" / "secrets"
    secrets.mkdir(parents=True)
    (secrets / "monitoring_password").write_text("s3cret-monitoring\n")
    monkeypatch.setenv("SWARM_STATE_DIR", str(clean_env / "swarm-state"))
    monkeypatch.setenv("SWARM_PROMETHEUS_PORT", "30090")
    monkeypatch.setenv("SWARM_ALERTMANAGER_PORT", "30093")
    return clean_env


def test_swarm_mode_reads_the_swarm_prometheus(
    swarm_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STACKDECK_MODE", "swarm")
    s = Settings(repo_root=swarm_env)
    assert s.prometheus_url == "http://127.0.0.1:30090"
    assert s.alertmanager_url == "http://127.0.0.1:30093"
    assert s.monitoring_password is not None
    assert s.monitoring_password.get_secret_value() == "s3cret-monitoring"


def test_compose_mode_ignores_the_swarm(swarm_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STACKDECK_MODE", "compose")
    s = Settings(repo_root=swarm_env)
    assert s.prometheus_url != "http://127.0.0.1:30090"
    assert s.alertmanager_url != "http://127.0.0.1:30093"
    assert s.monitoring_password is None


def test_stackdeck_settings_win(swarm_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STACKDECK_MODE", "swarm")
    monkeypatch.setenv("STACKDECK_PROMETHEUS_URL", "http://127.0.0.1:1234")
    s = Settings(repo_root=swarm_env)
    assert s.prometheus_url == "http://127.0.0.1:1234"


def test_unreadable_secret_leaves_no_credential(
    swarm_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STACKDECK_MODE", "swarm")
    monkeypatch.setenv("SWARM_STATE_DIR", str(swarm_env / "nowhere"))
    s = Settings(repo_root=swarm_env)
    assert s.prometheus_url == "http://127.0.0.1:30090" and s.monitoring_password is None


def test_auto_mode_at_the_swarm_manager_reads_the_swarm_prometheus(
    swarm_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`DOCKER_HOST=$(swarm.sh env) stackdeck` (mode auto): the swarm's
    Prometheus, not the compose stack's of the same host; any other engine
    (or the socket of a swarm whose state folder is gone): the compose one."""
    monkeypatch.delenv("STACKDECK_MODE", raising=False)
    state = swarm_env / "swarm-state"
    monkeypatch.setenv("DOCKER_HOST", f"unix://{state}/api/docker.sock")
    s = Settings(repo_root=swarm_env)
    assert s.prometheus_url == "http://127.0.0.1:30090"
    assert s.monitoring_password is not None
    for other in (
        "unix:///var/run/docker.sock",
        f"unix://{state}/api/other.sock",
        "tcp://127.0.0.1:2375",
    ):
        monkeypatch.setenv("DOCKER_HOST", other)
        assert Settings(repo_root=swarm_env).prometheus_url != "http://127.0.0.1:30090", other
    monkeypatch.setenv("DOCKER_HOST", f"unix://{swarm_env}/gone/api/docker.sock")
    monkeypatch.setenv("SWARM_STATE_DIR", str(swarm_env / "gone"))
    assert Settings(repo_root=swarm_env).prometheus_url != "http://127.0.0.1:30090"
