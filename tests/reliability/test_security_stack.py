"""What the stack exposes to the host: only nginx, only on 127.0.0.1; the
database and the cache have no TCP door on the host, and Redis wants its
password on every path in.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess

import pytest
import redis

from console.core.stack import published_ports
from tests.conftest import Stack
from tests.reliability._harness import docker

pytestmark = [pytest.mark.stack, pytest.mark.destructive]


def _project_containers(stack: Stack) -> list[dict]:
    ids = docker(
        "ps", "-a", "-q", "--filter", f"label=com.docker.compose.project={stack.name}"
    ).stdout.split()
    assert ids, f"no container of project {stack.name}"
    return json.loads(docker("inspect", *ids).stdout)


def _answer(host: str, port: int, hello: bytes) -> bytes | None:
    """What a server at host:port answers to ``hello`` (None: no connection).

    A bare TCP connect proves nothing here: this machine's outbound proxy
    accepts connections to any routed address. What answers is what counts.
    """
    try:
        with socket.create_connection((host, port), timeout=2) as s:
            s.settimeout(3)
            s.sendall(hello)
            return s.recv(64)
    except OSError:
        return None


def speaks_redis(host: str, port: int = 6379) -> bool:
    data = _answer(host, port, b"PING\r\n") or b""
    return data.startswith((b"+PONG", b"-NOAUTH", b"-ERR", b"-DENIED"))


def speaks_postgres(host: str, port: int = 5432) -> bool:
    # SSLRequest: PostgreSQL answers a single byte, S or N
    data = _answer(host, port, (8).to_bytes(4, "big") + (80877103).to_bytes(4, "big")) or b""
    return data in (b"S", b"N")


SPEAKS = {"db": speaks_postgres, "redis": speaks_redis}


def test_only_nginx_and_the_monitoring_uis_are_published_and_only_on_loopback(
    stack: Stack,
) -> None:
    published: dict[str, list[str]] = {}
    for c in _project_containers(stack):
        name = c["Name"].lstrip("/")
        bindings = (c.get("HostConfig") or {}).get("PortBindings") or {}
        for port, binds in bindings.items():
            for b in binds or []:
                published.setdefault(name, []).append(
                    f"{b.get('HostIp') or '0.0.0.0'}:{b.get('HostPort')}->{port}"
                )
    ports = published_ports({**stack.env, **os.environ}, stack.http_port)
    expected = {
        stack.container("nginx"): [
            f"127.0.0.1:{stack.http_port}->80/tcp",
            f"127.0.0.1:{ports['HTTPS_PORT']}->443/tcp",
        ],
        stack.container("prometheus"): [f"127.0.0.1:{ports['PROMETHEUS_PORT']}->9090/tcp"],
        stack.container("alertmanager"): [f"127.0.0.1:{ports['ALERTMANAGER_PORT']}->9093/tcp"],
        stack.container("alert_sink"): [f"127.0.0.1:{ports['ALERT_SINK_PORT']}->9099/tcp"],
    }
    # db, redis, the backends, the exporters: nothing on the host
    published = {name: sorted(binds) for name, binds in published.items()}
    assert published == {k: sorted(v) for k, v in expected.items()}, f"published ports: {published}"


@pytest.mark.parametrize("service,port", [("db", 5432), ("redis", 6379)])
def test_db_and_redis_ports_not_open_on_the_host(stack: Stack, service: str, port: int) -> None:
    # Loopback only: tests send no traffic to other (private-range) addresses.
    # That nothing is published beyond nginx is checked from docker's own
    # port bindings above.
    assert not SPEAKS[service]("127.0.0.1", port), f"{service} answers on 127.0.0.1:{port}"


@pytest.mark.parametrize("service", ["db", "redis"])
def test_db_and_redis_networks_give_the_host_no_address(stack: Stack, service: str) -> None:
    """The host must not be on the networks of db and redis: where the host
    has an address on a container network, it reaches every port there (with
    or without ``internal: true``). Checked from configuration, without
    sending traffic: each network of the container must give the host no
    IPv4 address (``com.docker.network.bridge.inhibit_ipv4``). Defect 1 in
    docs/RELIABILITY.md: db and redis are on the compose network ``data``
    only, which is internal and has no host address."""
    data = json.loads(docker("inspect", stack.container(service)).stdout)[0]
    networks = list((data["NetworkSettings"].get("Networks") or {}).keys())
    assert networks, f"{service} is on no network"
    exposed = {}
    for name in networks:
        net = json.loads(docker("network", "inspect", name).stdout)[0]
        bridge = (net.get("Options") or {}).get(
            "com.docker.network.bridge.name"
        ) or f"br-{net['Id'][:12]}"
        out = subprocess.run(
            ["ip", "-4", "-o", "addr", "show", "dev", bridge], capture_output=True, text=True
        ).stdout
        addrs = [line.split()[3] for line in out.splitlines() if len(line.split()) > 3]
        if addrs:
            exposed[name] = addrs
    assert not exposed, (
        f"the host has an address on the network(s) of {service}: {exposed}; "
        "it can reach its TCP port (only the unix socket should be open to the host)"
    )


def test_redis_requires_a_password_on_the_socket(stack: Stack) -> None:
    sock = str(stack.redis_socket)
    anonymous = redis.Redis(unix_socket_path=sock, socket_timeout=5)
    with pytest.raises(redis.exceptions.AuthenticationError):
        anonymous.ping()
    wrong = redis.Redis(unix_socket_path=sock, password="not-the-password", socket_timeout=5)
    with pytest.raises(redis.exceptions.AuthenticationError):
        wrong.ping()
    good = redis.Redis.from_url(stack.redis_url, socket_timeout=5)
    assert good.ping() is True


def test_redis_requires_a_password_over_tcp_inside_the_network(stack: Stack) -> None:
    r = docker(
        "exec",
        "-e",
        "REDISCLI_AUTH=",
        stack.container("redis"),
        "redis-cli",
        "-h",
        "127.0.0.1",
        "-p",
        "6379",
        "get",
        "emergency_rate_limit",
        check=False,
    )
    assert "NOAUTH" in (r.stdout + r.stderr), (
        f"redis answered without a password: {r.stdout!r} {r.stderr!r}"
    )


def test_postgres_over_tcp_requires_a_password(stack: Stack) -> None:
    """The backends' path in (TCP on the compose network) is password-only."""
    r = docker(
        "exec",
        "-e",
        "PGPASSWORD=",
        stack.container("db"),
        "psql",
        "-w",
        "-h",
        "127.0.0.1",
        "-U",
        "postgres",
        "-d",
        "investment_db",
        "-c",
        "select 1",
        check=False,
    )
    assert r.returncode != 0
    assert "password" in r.stderr.lower(), r.stderr
