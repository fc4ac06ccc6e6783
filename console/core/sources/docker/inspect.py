"""Parsers of ``docker inspect`` output, shared by the sources and the ops.

Pure functions over the attrs dict, whoever fetched it: the SDK's
``inspect_container`` (the sources) or ``docker container inspect`` /
``docker image inspect`` through the CLI (the ops engine); both give the same
JSON. Unit-tested with recorded output (``tests/unit/core/data/inspect_*.json``).

A missing container is ``None`` (the ops ask for one by name and get nothing):
every parser accepts it and answers "missing" or ``None``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

from console.core.models import Colour, ContainerInfo

__all__ = [
    "COLOUR_LABEL",
    "PROJECT_LABEL",
    "SERVICE_LABEL",
    "VERSION_LABEL",
    "Attrs",
    "container_colour",
    "container_health",
    "container_info",
    "container_name",
    "container_version",
    "cpu_limit_of",
    "env_of",
    "exit_code_of",
    "health_of",
    "hostname_of",
    "image_id",
    "is_tty",
    "labels_of",
    "last_health_log",
    "parse_docker_time",
    "ports_of",
    "service_of",
    "short_image_id",
    "split_image",
    "started_at",
    "state_of",
]

Attrs = Mapping[str, Any] | None
"""One ``docker inspect`` object (a container or an image); None: it does not exist."""

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
COLOUR_LABEL = "com.investment.colour"
VERSION_LABEL = "com.investment.version"

_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)?$")


def parse_docker_time(value: str | None) -> datetime | None:
    """RFC 3339 with nanoseconds (``2024-05-01T10:00:01.123456789Z``) to an
    aware datetime (microsecond precision). Docker's zero time and junk: None."""
    if not value or value.startswith("0001-01-01"):
        return None
    match = _TIME.match(value.strip())
    if not match:
        return None
    base, frac, zone = match.groups()
    micro = (frac or "0")[:6].ljust(6, "0")
    tz = "+00:00" if zone in (None, "Z") else zone
    try:
        return datetime.fromisoformat(f"{base}.{micro}{tz}").astimezone(UTC)
    except ValueError:
        return None


def split_image(image: str) -> tuple[str, str]:
    """``registry:5000/investment-backend:v1.2.3`` -> (``registry:5000/investment-backend``, ``v1.2.3``).

    A digest (``name@sha256:...``) gives the short digest as tag; no tag: ``latest``.
    """
    if "@" in image:
        name, digest = image.split("@", 1)
        return name, digest.split(":")[-1][:12]
    slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > slash:
        return image[:colon], image[colon + 1 :]
    return image, "latest"


def _config(attrs: Attrs) -> Mapping[str, Any]:
    return (attrs or {}).get("Config") or {}


def _state(attrs: Attrs) -> Mapping[str, Any]:
    return (attrs or {}).get("State") or {}


def labels_of(attrs: Attrs) -> dict[str, str]:
    """``Config.Labels`` of a container or an image (empty when none)."""
    return dict(_config(attrs).get("Labels") or {})


def env_of(attrs: Attrs) -> dict[str, str]:
    """``Config.Env`` as a dict (``KEY=value`` items; the last one wins)."""
    return dict(item.split("=", 1) for item in (_config(attrs).get("Env") or []) if "=" in item)


def state_of(attrs: Attrs) -> str:
    """``running``, ``exited``, ``restarting``, ...; ``missing`` for no container."""
    if not attrs:
        return "missing"
    return str(_state(attrs).get("Status") or "unknown")


def health_of(attrs: Attrs) -> str | None:
    """``starting``, ``healthy`` or ``unhealthy``; None without a health check."""
    health = (_state(attrs).get("Health") or {}).get("Status") or None
    return None if health == "none" else health


def container_health(attrs: Attrs) -> tuple[str, str | None]:
    """``(state, health)``: ``("missing", None)``, ``("running", "healthy")``,
    ``("exited", None)``..."""
    return state_of(attrs), health_of(attrs)


def exit_code_of(attrs: Attrs) -> int | None:
    """``State.ExitCode`` (None for no container)."""
    code = _state(attrs).get("ExitCode")
    return None if code is None else int(code)


def last_health_log(attrs: Attrs) -> str | None:
    """Output of the last health probe (why a container is unhealthy)."""
    logs = (_state(attrs).get("Health") or {}).get("Log") or []
    if not logs:
        return None
    last = logs[-1]
    out = str(last.get("Output", "")).strip()
    return f"exit {last.get('ExitCode')}" + (f": {out[:200]}" if out else "")


def started_at(attrs: Attrs) -> datetime | None:
    """When a running (or paused) container started; None otherwise."""
    if state_of(attrs) not in ("running", "paused"):
        return None
    return parse_docker_time(_state(attrs).get("StartedAt"))


def container_version(attrs: Attrs) -> str | None:
    """The app version a container runs: its version label, else ``APP_VERSION``."""
    return labels_of(attrs).get(VERSION_LABEL) or env_of(attrs).get("APP_VERSION") or None


def container_colour(attrs: Attrs) -> Colour | None:
    """``blue`` or ``green`` for a backend colour (label, else ``APP_COLOUR``); None otherwise."""
    colour = labels_of(attrs).get(COLOUR_LABEL) or env_of(attrs).get("APP_COLOUR") or None
    return cast(Colour, colour) if colour in ("blue", "green") else None


def container_name(attrs: Attrs) -> str:
    """The name without docker's leading ``/``."""
    return str((attrs or {}).get("Name") or "").lstrip("/")


def service_of(attrs: Attrs) -> str:
    """The compose service (label), else the container's name."""
    return labels_of(attrs).get(SERVICE_LABEL) or container_name(attrs)


def is_tty(attrs: Attrs) -> bool:
    """Whether the container has a TTY (its log is then not multiplexed)."""
    return bool(_config(attrs).get("Tty"))


def hostname_of(attrs: Attrs) -> str:
    """``Config.Hostname`` ('' when unknown)."""
    return str(_config(attrs).get("Hostname") or "")


def ports_of(attrs: Attrs) -> list[str]:
    """Published ports as ``host_ip:host_port->port/proto`` (IPv6 twins left out)."""
    out: list[str] = []
    ports = ((attrs or {}).get("NetworkSettings") or {}).get("Ports") or {}
    for container_port, bindings in sorted(ports.items()):
        for binding in bindings or []:
            host_ip = binding.get("HostIp") or "0.0.0.0"
            if host_ip == "::":
                continue  # the IPv6 twin of a 0.0.0.0 binding
            out.append(f"{host_ip}:{binding.get('HostPort')}->{container_port}")
    return out


def cpu_limit_of(attrs: Attrs) -> float | None:
    """CPUs a container may use from ``HostConfig`` (NanoCpus or quota/period)."""
    host = (attrs or {}).get("HostConfig") or {}
    nano = host.get("NanoCpus") or 0
    if nano:
        return float(nano / 1e9)
    quota, period = host.get("CpuQuota") or 0, host.get("CpuPeriod") or 0
    if quota > 0 and period > 0:
        return float(quota / period)
    return None


def image_id(attrs: Attrs) -> str | None:
    """An image's ``Id`` (``sha256:...``); None for no image."""
    value = (attrs or {}).get("Id")
    return str(value) if value else None


def short_image_id(attrs: Attrs) -> str:
    """The 12 hex digits ``docker images`` shows ('' for no image)."""
    return (image_id(attrs) or "").removeprefix("sha256:")[:12]


def container_info(attrs: Mapping[str, Any]) -> ContainerInfo:
    """A :class:`ContainerInfo` from a container's ``docker inspect`` output."""
    image, tag = split_image(str(_config(attrs).get("Image") or attrs.get("Image") or ""))
    return ContainerInfo(
        id=str(attrs.get("Id", ""))[:12],
        name=container_name(attrs),
        service=service_of(attrs),
        colour=container_colour(attrs),
        image=image,
        tag=tag,
        state=state_of(attrs),
        health=health_of(attrs),
        started_at=started_at(attrs),
        restart_count=int(attrs.get("RestartCount") or 0),
        ports=ports_of(attrs),
        version=container_version(attrs),
    )
