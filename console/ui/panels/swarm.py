"""The Containers panel's rows when the stack is a swarm stack.

One table, as a tree: each service (replicas running/desired, its update's
state, why a slot is empty), its tasks beneath it (node, state, desired
state, since when, image tag, error), then the nodes (role, state,
availability, the stack's tasks running there, labels, engine) under a row
naming those columns. Pure functions of a :class:`SwarmSnapshot`; the panel
(:mod:`console.ui.panels.containers`) puts them in its swarm table.
"""

from __future__ import annotations

from datetime import datetime

from rich.text import Text

from console.core.models import SwarmNode, SwarmService, SwarmSnapshot, SwarmTask
from console.ui.format import NONE, fmt_age, shorten
from console.ui.palette import Palette
from console.ui.widgets.table import Row

__all__ = [
    "SWARM_COLUMNS",
    "node_row",
    "service_row",
    "swarm_empty_reason",
    "swarm_rows",
    "swarm_title",
    "task_row",
]

SWARM_COLUMNS = [
    ("name", "service / task"),
    ("node", "node"),
    ("state", "state"),
    ("desired", "desired"),
    ("since", "since>"),
    ("replicas", "tasks>"),
    ("note", "error / note"),
    ("image", "image"),
]
"""(key, label) of the swarm table; node rows reuse them under their own
heading row (``role``, ``state``, ``availability``, ...)."""

NOTE_WIDTH = 44
"""Longest error or note shown in a row (the filter still sees all of it)."""

_UPDATING = {
    "updating": "updating",
    "paused": "update paused",
    "rollback_started": "rolling back",
    "rollback_paused": "rollback paused",
}


def _task_style(state: str, palette: Palette) -> str:
    if state == "running":
        return palette.ok
    if state in ("failed", "rejected", "orphaned"):
        return f"bold {palette.err}"
    if state in ("shutdown", "complete", "remove"):
        return palette.muted
    return palette.warn


def service_row(service: SwarmService, palette: Palette) -> Row:
    """``backend  replicated  running  2/3  backend:v1.2.3  task: non-zero exit (1)``."""
    short = service.running < service.desired
    if service.update_state in _UPDATING:
        state = Text(
            _UPDATING[service.update_state],
            style=f"bold {palette.err}" if "paused" in service.update_state else palette.warn,
        )
    elif service.desired == 0:
        state = Text("scaled to 0", style=palette.muted)
    elif service.running == 0:
        state = Text("down", style=f"bold {palette.err}")
    elif short:
        state = Text("degraded", style=f"bold {palette.warn}")
    else:
        state = Text("running", style=palette.ok)
    replicas = Text(
        f"{service.running}/{service.desired}",
        justify="right",
        style=(palette.err if service.running == 0 and service.desired else palette.warn)
        if short
        else palette.ok,
    )
    note = ""
    lost = next((t for t in service.tasks if t.lost), None)
    if service.update_state in _UPDATING and service.update_message:
        note = service.update_message
    elif short and (failed := service.last_error) is not None:
        note = f"{failed.name}: {failed.error}"
    elif lost is not None:
        note = f"{lost.name} lost: {lost.node} {lost.node_state}"
    image = f"{service.image}:{service.tag}" if service.tag else service.image
    cells = (
        Text(service.service, style="bold"),
        Text("" if service.mode == "replicated" else service.mode, style=palette.muted),
        state,
        Text(""),
        Text(""),
        replicas,
        Text(shorten(note, NOTE_WIDTH), style=palette.err if short else palette.warn),
        Text(shorten(image, 28)),
    )
    search = " ".join([service.name, service.service, image, state.plain, note])
    return Row(key=f"service:{service.id}", cells=cells, search=search)


def task_row(task: SwarmTask, service: SwarmService, palette: Palette, now: datetime) -> Row:
    """``  └ backend.2  node-2  running  running  3m  v1.2.3`` (a failed one
    with its error; a tag other than the service's in the warning colour:
    an update half way)."""
    desired_style = palette.muted
    if task.desired_state != "running" and task.state == "running":
        desired_style = palette.warn  # being stopped: an update or a scale-down
    note = task.error or ("" if task.state == "running" else task.message)
    state = Text(task.state, style=_task_style(task.state, palette))
    if task.lost:
        # its node is down: the engine keeps the last state it heard of
        state = Text("lost", style=f"bold {palette.warn}")
        note = f"node {task.node_state}: last seen {task.state}"
    if task.exit_code and task.state in ("failed", "complete", "shutdown"):
        note = f"{note} (exit {task.exit_code})" if note and "exit" not in note else note
    tag_style = palette.warn if task.tag and task.tag != service.tag else ""
    cells = (
        Text(f" └ {task.name}", style="" if task.live else palette.muted),
        Text(task.node or NONE, style="" if task.node else palette.muted),
        state,
        Text(task.desired_state, style=desired_style),
        Text(fmt_age(now, task.since), justify="right", style=palette.muted),
        Text(""),
        Text(shorten(note, NOTE_WIDTH), style=palette.err if task.error else palette.muted),
        Text(shorten(task.tag, 28), style=tag_style),
    )
    words = [task.name, task.id, task.node or "", state.plain, task.desired_state, note]
    return Row(key=f"task:{task.id}", cells=cells, search=" ".join(words))


def _nodes_heading(palette: Palette) -> Row:
    style = f"bold {palette.muted}"
    labels = ("nodes", "role", "state", "availability", "", "tasks", "labels", "engine")
    cells = tuple(
        Text(label, style=style, justify="right" if label == "tasks" else "left")
        for label in labels
    )
    return Row(key="nodes", cells=cells, search="nodes")


def node_row(node: SwarmNode, palette: Palette, *, tasks: int, this: bool) -> Row:
    """``node-1 ★  manager  ready  active  3  26.1.5  db=true``: ``★`` the
    leader, ``◂`` the node whose engine the console reads."""
    name = Text(node.hostname, style="bold")
    if node.leader:
        name.append(" ★", style=palette.warn)
    if this:
        name.append(" ◂", style=palette.muted)
    state_style = {"ready": palette.ok, "down": f"bold {palette.err}"}.get(node.state, palette.warn)
    availability_style = palette.ok if node.availability == "active" else f"bold {palette.warn}"
    role = node.role
    if node.role == "manager" and node.reachability and node.reachability != "reachable":
        role += f" ({node.reachability})"
    labels = ", ".join(f"{k}={v}" for k, v in sorted(node.labels.items()))
    note = node.message if node.state != "ready" and node.message else labels
    cells = (
        name,
        Text(role, style=palette.err if "unreachable" in role else ""),
        Text(node.state, style=state_style),
        Text(node.availability, style=availability_style),
        Text(""),
        Text(str(tasks), justify="right", style="" if tasks else palette.muted),
        Text(shorten(note, NOTE_WIDTH), style=palette.muted if note == labels else palette.err),
        Text(node.engine_version or NONE, style=palette.muted),
    )
    words = [node.hostname, node.id, node.role, node.state, node.availability, labels]
    return Row(key=f"node:{node.id}", cells=cells, search=" ".join(words))


def swarm_rows(snapshot: SwarmSnapshot, palette: Palette, now: datetime) -> list[Row]:
    """Every row of the swarm table: services with their tasks, then the nodes."""
    rows: list[Row] = []
    running_on: dict[str, int] = {}
    for service in snapshot.services:
        rows.append(service_row(service, palette))
        for task in service.shown_tasks:
            rows.append(task_row(task, service, palette, now))
            if task.state == "running" and not task.lost and task.node_id:
                running_on[task.node_id] = running_on.get(task.node_id, 0) + 1
    if snapshot.nodes:
        rows.append(_nodes_heading(palette))
        for node in snapshot.nodes:
            rows.append(
                node_row(
                    node,
                    palette,
                    tasks=running_on.get(node.id, 0),
                    this=node.id == snapshot.node_id,
                )
            )
    return rows


def swarm_title(snapshot: SwarmSnapshot) -> str:
    """``swarm investment · 4 services · 7/8 tasks · 3 nodes, 1 down, 1 drain``."""
    running = sum(s.running for s in snapshot.services)
    desired = sum(s.desired for s in snapshot.services)
    services = len(snapshot.services)
    text = (
        f"swarm {snapshot.stack} · {services} service{'s' if services != 1 else ''}"
        f" · {running}/{desired} tasks"
    )
    if snapshot.nodes:
        text += f" · {len(snapshot.nodes)} node{'s' if len(snapshot.nodes) != 1 else ''}"
        down = sum(1 for n in snapshot.nodes if n.state != "ready")
        drained = sum(1 for n in snapshot.nodes if n.availability != "active")
        if down:
            text += f", {down} down"
        if drained:
            text += f", {drained} not active"
    return text


def swarm_empty_reason(snapshot: SwarmSnapshot) -> str | None:
    """What to show instead of an empty swarm table (None: it has rows)."""
    if snapshot.services:
        return None
    return (
        f"no services in swarm stack {snapshot.stack!r} · is it deployed? (scripts/swarm.sh deploy)"
    )
