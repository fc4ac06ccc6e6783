"""Which deployment colour serves, and what the other one is for.

After a deploy the previous colour keeps running as the instant rollback
target (the default), or is stopped (``keep_previous_colour=false`` after a
bake); after a rollback the colour rolled back from is stopped and kept for
a roll-forward. A colour that does not serve is not an outage whether it
runs or not: only the colour nginx routes to must be up. The panels, the
header and the health source read one classification from here, so they
agree on what is red.

Pure: snapshots in, :class:`~console.core.models.ColourStatus` out; no I/O,
no client library (the UI imports this module).
"""

from __future__ import annotations

from typing import get_args

from console.core.models import (
    Colour,
    ColourRole,
    ColourStatus,
    ContainerInfo,
    ContainersSnapshot,
    EndpointResult,
    HealthSnapshot,
)

__all__ = [
    "COLOURS",
    "STOPPED",
    "colour_roles",
    "frontend_not_running",
    "frontend_roles",
    "is_frontend",
    "not_running",
    "serving_colour",
    "unreachable",
]

COLOURS: tuple[Colour, ...] = get_args(Colour)
"""``("blue", "green")``."""

STOPPED = frozenset({"exited", "created", "dead"})
"""Container states of a colour that is not trying to run (``restarting`` and
``paused`` are: a crash loop of the rollback target is worth a warning)."""

HEALTH_PATH = "/api/health"


def unreachable(result: EndpointResult) -> bool:
    """nginx could not reach the backend (a 502/504 of its own) or nothing
    answered at all: the colour is down, not merely unhealthy (a backend's
    own answer, even a 503, carries its version)."""
    if result.status is None:
        return True
    return result.status in (502, 504) and result.version is None


def serving_colour(
    containers: ContainersSnapshot | None, health: HealthSnapshot | None
) -> Colour | None:
    """The colour nginx routes to: read from nginx's active upstream file (the
    container list), else the colour ``/api/health`` through nginx reported."""
    if containers is not None and containers.serving_colour:
        return containers.serving_colour
    if health is not None:
        for result in health.results:
            if result.target == "nginx" and result.path == HEALTH_PATH and result.colour:
                return result.colour
    return None


def is_frontend(info: ContainerInfo) -> bool:
    """A container of the web frontend's colours (``frontend_blue``/``_green``):
    it has a colour of its own, apart from the backend's."""
    return info.service.startswith("frontend_")


def _containers_of(
    snapshot: ContainersSnapshot, colour: Colour, *, frontend: bool = False
) -> list[ContainerInfo]:
    return [c for c in snapshot.containers if c.colour == colour and is_frontend(c) == frontend]


def _state(infos: list[ContainerInfo]) -> str | None:
    """One state for a colour's containers: running if any runs (compose
    keeps a renamed old container for a moment while it recreates one)."""
    if not infos:
        return None
    if any(c.state == "running" for c in infos):
        return "running"
    return infos[0].state


def colour_roles(
    containers: ContainersSnapshot | None, health: HealthSnapshot | None
) -> dict[Colour, ColourStatus]:
    """The role of each colour (see :data:`~console.core.models.ColourRole`).

    The container list decides whether a colour runs; without one (the engine
    does not answer) the colour's own ``/api/health`` answer stands in for it.
    """
    serving = serving_colour(containers, health)
    direct: dict[str, EndpointResult] = {}
    if health is not None:
        for result in health.results:
            if result.path == HEALTH_PATH and result.target != "nginx":
                direct[result.target] = result
    out: dict[Colour, ColourStatus] = {}
    for colour in COLOURS:
        infos = _containers_of(containers, colour) if containers is not None else []
        state = _state(infos)
        version = next((c.version for c in infos if c.version), None)
        probe = direct.get(colour)
        if version is None and probe is not None:
            version = probe.version
        if containers is not None:
            runs: bool | None = state is not None and state not in STOPPED
        elif probe is not None:
            runs = not unreachable(probe)
        else:
            runs = None
        role: ColourRole
        if serving is None:
            role = "unknown"
        elif colour == serving:
            role = "down" if runs is False else "serving"
        elif containers is not None and not infos:
            role = "absent"
        elif runs is None:
            role = "unknown"
        else:
            role = "standby-running" if runs else "standby"
        out[colour] = ColourStatus(colour=colour, role=role, state=state, version=version)
    return out


def frontend_roles(containers: ContainersSnapshot) -> dict[Colour, ColourStatus]:
    """The role of each web frontend colour, as :func:`colour_roles` does for
    the backend: the colour nginx sends ``/`` to serves, the other is on
    standby (running or stopped) or absent."""
    serving = containers.serving_frontend
    out: dict[Colour, ColourStatus] = {}
    for colour in COLOURS:
        infos = _containers_of(containers, colour, frontend=True)
        state = _state(infos)
        version = next((c.version for c in infos if c.version), None)
        runs = state is not None and state not in STOPPED
        role: ColourRole
        if serving is None:
            role = "unknown"
        elif colour == serving:
            role = "serving" if runs else "down"
        elif not infos:
            role = "absent"
        else:
            role = "standby-running" if runs else "standby"
        out[colour] = ColourStatus(colour=colour, role=role, state=state, version=version)
    return out


def not_running(containers: ContainersSnapshot) -> set[Colour]:
    """Colours the health source need not ask: not serving, and no container
    of theirs runs (stopped on purpose, or never created). Asking one only
    waits for nginx to give up on it."""
    roles = colour_roles(containers, None)
    return {c for c, status in roles.items() if status.role in ("standby", "absent")}


def frontend_not_running(containers: ContainersSnapshot) -> set[Colour]:
    """Frontend colours the health source need not ask: on standby and
    stopped, or without a container (as :func:`not_running` for the backend)."""
    roles = frontend_roles(containers)
    return {c for c, status in roles.items() if status.role in ("standby", "absent")}
