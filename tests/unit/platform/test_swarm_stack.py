"""The Swarm stack's render step (scripts/swarm_stack.py): compose's merged
model in, `docker stack deploy`'s stack out. Pure on a small model, and once
on the real compose files (``docker compose config`` needs no engine)."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.stack import REPO

_spec = importlib.util.spec_from_file_location("swarm_stack", REPO / "scripts" / "swarm_stack.py")
assert _spec and _spec.loader
swarm_stack = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(swarm_stack)

PLACEHOLDER = "placeholder-42"
SECRET_VARS = (
    "POSTGRES_PASSWORD",
    "REDIS_PASSWORD",
    "JWT_SECRET",
    "ADMIN_TOKEN",
    "ADMIN_PASSWORD",
    "TEST_PASSWORD",
)
"""What the compose files require; scripts/swarm.sh renders them as a placeholder."""


def _model(tmp_path: Path, **backend: Any) -> dict[str, Any]:
    site = tmp_path / "site.conf"
    site.write_text("server {}\n")
    svc = {
        "image": "reg:5000/x-backend:v1",
        "container_name": "investment_backend_blue_prod",
        "depends_on": {"db": {"condition": "service_healthy"}},
        "restart": "unless-stopped",
        "environment": {"DATABASE_URL": "postgresql://postgres@db/x"},
        "ports": [{"mode": "host", "target": 80, "published": "80", "host_ip": "127.0.0.1"}],
        "secrets": [{"source": "tls_key", "target": "/etc/nginx/tls/key.pem", "mode": "0400"}],
        "deploy": {"placement": {}, "resources": {"limits": {"cpus": 1, "memory": "402653184"}}},
    }
    svc.update(backend)
    return {
        "name": "investment",
        "services": {"backend": svc},
        "networks": {"default": {"name": "investment_default", "driver": "overlay", "ipam": {}}},
        "configs": {"nginx_site": {"name": "investment_nginx_site", "file": str(site)}},
        "secrets": {"tls_key": {"name": "investment_tls_key", "external": True}},
    }


def test_render_keeps_what_swarm_takes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    stack = swarm_stack.render(_model(tmp_path), out, PLACEHOLDER)
    svc = stack["services"]["backend"]
    assert not {"container_name", "depends_on", "restart"} & set(svc)
    assert svc["ports"] == [{"mode": "host", "target": 80, "published": 80}]
    assert svc["secrets"][0]["mode"] == 0o400
    assert "placement" not in svc["deploy"]
    assert svc["deploy"]["resources"]["limits"]["cpus"] == "1"
    # a config is named after its content and shipped beside the stack
    cfg = stack["configs"]["nginx_site"]
    assert cfg["file"] == "./configs/nginx_site"
    assert (out / "configs" / "nginx_site").read_text() == "server {}\n"
    first = cfg["name"]
    edited = _model(tmp_path)
    (tmp_path / "site.conf").write_text("server { listen 81; }\n")
    again = swarm_stack.render(edited, tmp_path / "out2", PLACEHOLDER)
    assert again["configs"]["nginx_site"]["name"] != first
    assert first.startswith("investment_nginx_site_")


def test_render_refuses_a_secret_in_the_environment(tmp_path: Path) -> None:
    model = _model(tmp_path, environment={"JWT_SECRET": PLACEHOLDER})
    with pytest.raises(
        swarm_stack.RenderError, match=r"environment\.JWT_SECRET would carry a secret"
    ):
        swarm_stack.render(model, tmp_path / "out", PLACEHOLDER)


@pytest.mark.parametrize(
    ("where", "found"),
    [
        ({"labels": {"com.x.token": f"t={PLACEHOLDER}"}}, r"labels\.com\.x\.token"),
        ({"command": ["serve", f"--password={PLACEHOLDER}"]}, r"command\[1\]"),
        ({"entrypoint": ["sh", "-c", f"run {PLACEHOLDER}"]}, r"entrypoint\[2\]"),
        (
            {"healthcheck": {"test": ["CMD", "redis-cli", "-a", PLACEHOLDER, "ping"]}},
            r"healthcheck\.test\[3\]",
        ),
        (
            {"deploy": {"labels": {"auth": PLACEHOLDER}}},
            r"deploy\.labels\.auth",
        ),
        ({"logging": {"options": {"token": PLACEHOLDER}}}, r"logging\.options\.token"),
    ],
)
def test_render_refuses_a_secret_anywhere_in_a_service(
    tmp_path: Path, where: dict[str, Any], found: str
) -> None:
    """Not only the environment: any value of the service that would carry
    it (a label, a command, a health check, a logging option)."""
    model = _model(tmp_path, **where)
    with pytest.raises(swarm_stack.RenderError, match=f"service backend: {found} would carry"):
        swarm_stack.render(model, tmp_path / "out", PLACEHOLDER)


def test_render_refuses_a_secret_in_a_network_option(tmp_path: Path) -> None:
    model = _model(tmp_path)
    model["networks"]["default"]["driver_opts"] = {"encrypted-key": PLACEHOLDER}
    with pytest.raises(
        swarm_stack.RenderError, match=r"networks\.default\.driver_opts\.encrypted-key"
    ):
        swarm_stack.render(model, tmp_path / "out", PLACEHOLDER)


def test_render_refuses_a_routing_mesh_port(tmp_path: Path) -> None:
    model = _model(tmp_path, ports=[{"mode": "ingress", "target": 80, "published": "80"}])
    with pytest.raises(swarm_stack.RenderError, match="mode: host"):
        swarm_stack.render(model, tmp_path / "out", PLACEHOLDER)


def test_the_real_overlay_renders_to_the_swarm_services(tmp_path: Path) -> None:
    if shutil.which("docker") is None:
        pytest.fail("no docker CLI: scripts/engine.sh installs it")
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "SWARM_REGISTRY": "reg:5000",
        **dict.fromkeys(SECRET_VARS, PLACEHOLDER),
    }
    compose = REPO / "compose"
    r = subprocess.run(
        ["docker", "compose", "-p", "investment", "--project-directory", str(compose)]
        + [
            a
            for f in ("", ".production", ".swarm")
            for a in ("-f", str(compose / f"docker-compose{f}.yml"))
        ]
        + ["config", "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    stack = swarm_stack.render(json.loads(r.stdout), tmp_path, PLACEHOLDER)
    assert set(stack["services"]) == {
        "backend",
        "worker",
        "frontend",
        "nginx",
        "db",
        "redis",
        "market-sim",
        "node_exporter",
        "prometheus",
        "alertmanager",
        "alert_sink",
        "postgres_exporter",
        "redis_exporter",
        "nginx_exporter",
        "stack_exporter",
    }
    # the per-node monitoring is global; the stack exporter reads its node's engine
    assert stack["services"]["stack_exporter"]["deploy"]["mode"] == "global"
    assert stack["services"]["stack_exporter"]["environment"]["NODE_NAME"] == "{{.Node.Hostname}}"
    # the exporters' passwords come from the secrets, not the environment
    pg_env = stack["services"]["postgres_exporter"]["environment"]
    assert "DATA_SOURCE_NAME" not in pg_env
    assert pg_env["DATA_SOURCE_PASS_FILE"] == "/run/secrets/postgres_password"
    assert "REDIS_PASSWORD" not in (stack["services"]["redis_exporter"].get("environment") or {})
    backend = stack["services"]["backend"]
    assert backend["deploy"]["update_config"]["order"] == "start-first"
    assert backend["deploy"]["update_config"]["failure_action"] == "rollback"
    assert "APP_VERSION" not in backend["environment"]  # the image's own
    for name, svc in stack["services"].items():
        assert svc["deploy"]["endpoint_mode"] == "dnsrr", name
    assert stack["services"]["node_exporter"]["deploy"]["mode"] == "global"
    assert "node.labels.db == true" in stack["services"]["db"]["deploy"]["placement"]["constraints"]
    # Prometheus and Alertmanager published on the edge node itself (no
    # routing mesh here), where scripts/swarm.sh maps them to the host
    for name, port in (("prometheus", 9090), ("alertmanager", 9093)):
        published = [
            (p["target"], p["published"], p["mode"]) for p in stack["services"][name]["ports"]
        ]
        assert published == [(port, port, "host")], (name, published)


def _swarm_test_ports(http_port: int) -> dict[str, int]:
    """scripts/test.sh's Swarm tier ports: HTTP_PORT + its SWARM_PORT_OFFSETS."""
    text = (REPO / "scripts" / "test.sh").read_text()
    match = re.search(r'^SWARM_PORT_OFFSETS="([^"]+)"$', text, re.MULTILINE)
    assert match, "scripts/test.sh defines no SWARM_PORT_OFFSETS"
    pairs = (pair.split("=", 1) for pair in match.group(1).split(","))
    return {name: http_port + int(offset) for name, offset in pairs}


def test_the_swarm_tiers_ports_clear_the_compose_test_stacks() -> None:
    """The Swarm tier of scripts/test.sh runs after the compose tiers, with
    the compose test stack still up: none of its ports may be one of that
    stack's, nor in the kernel's ephemeral range (the load loops' outgoing
    connections hold those)."""
    from console.core.stack import published_ports

    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for http_port in (80, 18080, 18090, 18099):  # the default; test.sh's; the fresh machine's
        swarm = _swarm_test_ports(http_port)
        assert len(swarm) == 5 and len(set(swarm.values())) == 5, swarm
        assert "SWARM_API_PORT" not in swarm, swarm  # a unix socket, no TCP port
        assert "SWARM_ALERTMANAGER_PORT" in swarm, swarm  # the operations' notices
        compose = set(published_ports({}, http_port).values()) | {http_port}
        assert not compose & set(swarm.values()), (http_port, swarm, compose)
        assert max(swarm.values()) < low, (http_port, swarm, low)
