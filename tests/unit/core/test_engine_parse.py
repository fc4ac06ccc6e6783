"""Pure parsing of Docker engine data: inspect output, events, images, logs."""

from __future__ import annotations

import io
import struct
import tarfile
from datetime import UTC, datetime

from console.core.sources.docker.containers import (
    parse_active_colour,
    parse_frontend_colour,
    read_tar_member,
)
from console.core.sources.docker.events import engine_event
from console.core.sources.docker.inspect import container_info, parse_docker_time, split_image
from console.core.sources.docker.logs import _demux, parse_log_line

INSPECT = {
    "Id": "0123456789abcdef" * 4,
    "Name": "/investment_backend_green_prod",
    "RestartCount": 2,
    "Config": {
        "Image": "investment-backend:v1.2.3",
        "Labels": {
            "com.docker.compose.project": "investment",
            "com.docker.compose.service": "backend_green",
            "com.investment.colour": "green",
            "com.investment.version": "v1.2.3",
        },
        "Env": ["APP_VERSION=v1.2.3", "APP_COLOUR=green", "PATH=/usr/bin"],
    },
    "State": {
        "Status": "running",
        "StartedAt": "2025-03-14T10:00:00.123456789Z",
        "Health": {"Status": "healthy"},
    },
    "NetworkSettings": {
        "Ports": {
            "8000/tcp": None,
            "80/tcp": [
                {"HostIp": "127.0.0.1", "HostPort": "18082"},
                {"HostIp": "::", "HostPort": "18082"},
            ],
        }
    },
}


def test_container_info_from_inspect() -> None:
    info = container_info(INSPECT)
    assert info.id == "0123456789ab"
    assert info.name == "investment_backend_green_prod"
    assert info.service == "backend_green"
    assert info.colour == "green"
    assert (info.image, info.tag, info.version) == ("investment-backend", "v1.2.3", "v1.2.3")
    assert (info.state, info.health, info.restart_count) == ("running", "healthy", 2)
    assert info.started_at == datetime(2025, 3, 14, 10, 0, 0, 123456, tzinfo=UTC)
    assert info.ports == ["127.0.0.1:18082->80/tcp"]


def test_container_info_exited_without_healthcheck() -> None:
    data = {
        "Id": "ff" * 32,
        "Name": "/investment_db_prod",
        "Config": {"Image": "investment-db:latest", "Labels": {"com.docker.compose.service": "db"}},
        "State": {"Status": "exited", "StartedAt": "2025-03-14T10:00:00Z"},
    }
    info = container_info(data)
    assert (info.state, info.health, info.started_at, info.colour, info.version) == (
        "exited",
        None,
        None,
        None,
        None,
    )


def test_split_image() -> None:
    assert split_image("investment-backend:v1.0.0") == ("investment-backend", "v1.0.0")
    assert split_image("registry:5000/team/app:2") == ("registry:5000/team/app", "2")
    assert split_image("registry:5000/team/app") == ("registry:5000/team/app", "latest")
    assert split_image("app@sha256:abcdef0123456789") == ("app", "abcdef012345")


def test_parse_active_colour() -> None:
    assert parse_active_colour("set $active_backend backend_green;\n") == "green"
    assert (
        parse_active_colour(
            "# set $active_backend backend_green;\nset $active_backend backend_blue;"
        )
        == "blue"
    )
    assert parse_active_colour("set $active_backend backend_blue_surge;\n") == "blue"
    assert parse_active_colour("garbage") is None


def test_parse_frontend_colour() -> None:
    text = "set $active_backend backend_green;\nset $active_frontend frontend_blue;\n"
    assert parse_active_colour(text) == "green"
    assert parse_frontend_colour(text) == "blue"
    # a file from before the frontend had colours: the backend's colour
    assert parse_frontend_colour("set $active_backend backend_green_surge;\n") == "green"
    assert parse_frontend_colour("garbage") is None


def test_read_tar_member() -> None:
    buf = io.BytesIO()
    payload = b"set $active_backend backend_blue;\n"
    with tarfile.open(fileobj=buf, mode="w") as tar:
        ti = tarfile.TarInfo("active.conf")
        ti.size = len(payload)
        tar.addfile(ti, io.BytesIO(payload))
    assert parse_active_colour(read_tar_member(buf.getvalue())) == "blue"


def test_parse_docker_time() -> None:
    assert parse_docker_time("2025-03-14T10:00:00.5Z") == datetime(
        2025, 3, 14, 10, 0, 0, 500000, tzinfo=UTC
    )
    assert parse_docker_time("2025-03-14T12:00:00+02:00") == datetime(
        2025, 3, 14, 10, 0, tzinfo=UTC
    )
    assert parse_docker_time("0001-01-01T00:00:00Z") is None
    assert parse_docker_time("") is None
    assert parse_docker_time("nonsense") is None


def test_engine_events() -> None:
    base = {"Type": "container", "timeNano": 1_741_946_400_000_000_000}
    die = engine_event(
        {
            **base,
            "Action": "die",
            "Actor": {
                "ID": "abc",
                "Attributes": {
                    "name": "investment_db_prod",
                    "exitCode": "137",
                    "com.docker.compose.service": "db",
                },
            },
        }
    )
    assert die is not None
    assert (die.container, die.service, die.action, die.detail) == (
        "investment_db_prod",
        "db",
        "die",
        "exit 137",
    )
    assert die.at == datetime(2025, 3, 14, 10, 0, tzinfo=UTC)
    health = engine_event(
        {**base, "Action": "health_status: unhealthy", "Actor": {"Attributes": {"name": "x"}}}
    )
    assert health is not None and health.detail == "unhealthy"
    assert engine_event({**base, "Action": "exec_start: cat /etc/x", "Actor": {}}) is None
    assert engine_event({**base, "Type": "network", "Action": "connect"}) is None


def test_log_lines_and_demux() -> None:
    line = parse_log_line("c", "stderr", "2025-03-14T10:00:00.000000001Z boom: failed")
    assert (line.at, line.stream, line.text) == (
        datetime(2025, 3, 14, 10, tzinfo=UTC),
        "stderr",
        "boom: failed",
    )
    plain = parse_log_line("c", "stdout", "no timestamp here")
    assert (plain.at, plain.text) == (None, "no timestamp here")

    def frame(kind: int, data: bytes) -> bytes:
        return struct.pack(">BxxxL", kind, len(data)) + data

    raw = io.BytesIO(frame(1, b"out one\n") + frame(2, b"err\n") + frame(1, b""))
    assert list(_demux(raw)) == [("stdout", b"out one\n"), ("stderr", b"err\n")]


def test_docker_errors_read_well() -> None:
    from console.core.errors import SourceError
    from console.core.sources.docker.handle import describe_docker_error

    class APIError(Exception):
        status_code = 404
        explanation = "No such container: x"

    hung = Exception(
        "UnixHTTPConnectionPool(host='localhost', port=None): Read timed out. (read timeout=2.0)"
    )
    assert describe_docker_error(hung) == "the engine did not answer in time"
    assert describe_docker_error(FileNotFoundError(2, "No such file or directory")).startswith(
        "cannot connect to the engine"
    )
    assert describe_docker_error(APIError()) == "HTTP 404: No such container: x"
    assert describe_docker_error(SourceError("engine", "closed")) == "closed"


class _CountingApi:
    """The docker low-level API calls ContainersSource makes, from a dict."""

    def __init__(self) -> None:
        self.listed: list[dict[str, object]] = []
        self.inspects: dict[str, dict[str, object]] = {}
        self.inspected: list[str] = []

    def containers(self, **_: object) -> list[dict[str, object]]:
        return list(self.listed)

    def inspect_container(self, container_id: str) -> dict[str, object]:
        self.inspected.append(container_id)
        return self.inspects[container_id]


class _Handle:
    def __init__(self, api: _CountingApi) -> None:
        self.api = api

    def version(self) -> dict[str, str]:
        return {"Version": "20.10.24"}

    def forget_cache(self) -> None:
        pass


def test_containers_are_inspected_again_only_when_their_list_entry_changes() -> None:
    from console.core.config import Settings
    from console.core.sources.docker.containers import ContainersSource

    api = _CountingApi()
    first = dict(INSPECT, Id="a" * 64)
    api.inspects["a" * 64] = first
    api.listed = [{"Id": "a" * 64, "State": "running", "Status": "Up 2 minutes (healthy)"}]
    source = ContainersSource(Settings(project="investment"), _Handle(api))  # type: ignore[arg-type]

    assert source._collect().containers[0].restart_count == 2
    assert source._collect().containers[0].health == "healthy"
    assert api.inspected == ["a" * 64]  # the second poll reused the inspect

    # a restart: the list's Status starts over, so the container is inspected again
    api.inspects["a" * 64] = dict(first, RestartCount=3)
    api.listed = [{"Id": "a" * 64, "State": "running", "Status": "Up 1 second (health: starting)"}]
    assert source._collect().containers[0].restart_count == 3
    assert api.inspected == ["a" * 64] * 2

    # gone from the list: gone from the snapshot and from the cache
    api.listed = []
    assert source._collect().containers == []
    assert source._inspected == {}
