"""The shared parsers of ``docker inspect`` output, on recorded output
(``data/docker_inspect.json``: a running stack's containers, one failing its
health check, one that exited, and a backend image)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from console.core.sources.docker import inspect as parse

DATA = json.loads((Path(__file__).parent / "data" / "docker_inspect.json").read_text())
CONTAINERS: dict[str, dict[str, Any]] = DATA["containers"]
IMAGE: dict[str, Any] = DATA["image"]


def test_state_and_health() -> None:
    assert parse.container_health(CONTAINERS["backend_green"]) == ("running", "healthy")
    assert parse.container_health(CONTAINERS["unhealthy"]) == ("running", "unhealthy")
    assert parse.container_health(CONTAINERS["exited"]) == ("exited", None)
    assert parse.container_health(None) == ("missing", None)
    # "none" is what the engine says of a container whose health check is disabled
    no_check = {**CONTAINERS["db"], "State": {"Status": "running", "Health": {"Status": "none"}}}
    assert parse.health_of(no_check) is None


def test_why_a_container_is_unhealthy_or_exited() -> None:
    assert parse.last_health_log(CONTAINERS["unhealthy"]) == "exit 3: db not ready"
    assert parse.last_health_log(CONTAINERS["backend_green"]) == "exit 0"
    assert parse.last_health_log(CONTAINERS["exited"]) is None
    assert parse.last_health_log(None) is None
    assert parse.exit_code_of(CONTAINERS["exited"]) == 3
    assert parse.exit_code_of(None) is None


def test_labels_version_colour_and_service() -> None:
    green = CONTAINERS["backend_green"]
    assert parse.container_version(green) == "v1.0.0"
    assert parse.container_colour(green) == "green"
    assert parse.service_of(green) == "backend_green"
    assert parse.container_name(green) == "investment_backend_green_prod"
    # no version label: the APP_VERSION variable; neither: None
    env_only = {"Config": {"Labels": {}, "Env": ["APP_VERSION=v2.0.0", "APP_COLOUR=blue"]}}
    assert (parse.container_version(env_only), parse.container_colour(env_only)) == (
        "v2.0.0",
        "blue",
    )
    db = CONTAINERS["db"]
    assert (parse.container_version(db), parse.container_colour(db)) == (None, None)
    assert parse.container_version(None) is None
    # a container outside compose: its name stands for the service
    assert parse.service_of(CONTAINERS["exited"]) == "investment-probe-exited"
    assert parse.labels_of(IMAGE)["com.investment.version"] == "v1.0.0"
    assert parse.env_of(green)["APP_COLOUR"] == "green"


def test_started_at_only_while_running() -> None:
    assert parse.started_at(CONTAINERS["backend_green"]) == datetime(
        2026, 12, 2, 4, 43, 29, 111762, tzinfo=UTC
    )
    assert parse.started_at(CONTAINERS["exited"]) is None
    assert parse.started_at(None) is None


def test_cpu_limit_ports_tty_hostname() -> None:
    assert parse.cpu_limit_of(CONTAINERS["backend_green"]) == pytest.approx(1.0)
    assert parse.cpu_limit_of(CONTAINERS["exited"]) == pytest.approx(0.25)  # quota / period
    assert parse.cpu_limit_of({"HostConfig": {}}) is None
    assert parse.ports_of(CONTAINERS["nginx"]) == ["127.0.0.1:18102->80/tcp"]
    assert parse.ports_of(CONTAINERS["backend_green"]) == []  # exposed, not published
    assert parse.is_tty(CONTAINERS["backend_green"]) is False
    assert parse.hostname_of(CONTAINERS["backend_green"]) == "8481d35f102a"
    assert parse.hostname_of(None) == ""


def test_image_ids() -> None:
    assert parse.image_id(IMAGE) == IMAGE["Id"]
    assert parse.short_image_id(IMAGE) == IMAGE["Id"][7:19]
    assert (parse.image_id(None), parse.short_image_id(None)) == (None, "")


def test_container_info_from_recorded_inspect() -> None:
    info = parse.container_info(CONTAINERS["backend_green"])
    assert info.id == CONTAINERS["backend_green"]["Id"][:12]
    assert (info.name, info.service, info.colour) == (
        "investment_backend_green_prod",
        "backend_green",
        "green",
    )
    assert (info.image, info.tag, info.version) == ("investment-backend", "v1.0.0", "v1.0.0")
    assert (info.state, info.health, info.restart_count) == ("running", "healthy", 0)
    exited = parse.container_info(CONTAINERS["exited"])
    assert (exited.state, exited.health, exited.started_at) == ("exited", None, None)


def test_the_ops_engine_reads_inspect_output_through_the_same_parsers() -> None:
    from console.core.ops import backend, deploy, rollback
    from console.core.ops.steps import bake, health, images, worker

    assert backend.container_version is parse.container_version
    assert backend.container_health is parse.container_health
    for module in (deploy, bake, health, worker):
        assert module.container_health is parse.container_health, module.__name__
    assert bake.last_health_log is health.last_health_log is parse.last_health_log
    assert deploy.image_id is rollback.image_id is images.image_id is parse.image_id
    assert worker.hostname_of is parse.hostname_of and images.labels_of is parse.labels_of
