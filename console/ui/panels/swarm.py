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

from console.core.models import (
    NodeStats,
    SwarmNode,
    SwarmService,
    SwarmSnapshot,
    SwarmStatsSnapshot,
    SwarmTask,
    TaskHealth,
    TaskStats,
)
from console.ui.format import NONE, fmt_age, fmt_bytes, fmt_duration, shorten
from console.ui.palette import Palette
from console.ui.widgets.table import Row

__all__ = [
    "SWARM_COLUMNS",
    "SWARM_HEALTH_COLUMNS",
    "SWARM_STATS_COLUMNS",
    "node_row",
    "node_stats_row",
    "service_row",
    "swarm_empty_reason",
    "swarm_health_rows",
    "swarm_rows",
    "swarm_stats_empty_reason",
    "swarm_stats_rows",
    "swarm_stats_title",
    "swarm_title",
    "task_health_row",
    "task_row",
    "task_stats_row",
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


# --- stats per node and per task, health per task (the monitoring) ------------

SWARM_STATS_COLUMNS = [
    ("name", "node / task"),
    ("node", "node"),
    ("cpu", "CPU%>"),
    ("mem", "mem / total>"),
    ("memp", "mem%>"),
    ("load", "load>"),
    ("age", "sample>"),
]
"""(key, label) of the Stats panel's table in swarm mode: each node (node
exporter), then the stack's tasks on it (stack exporter of that node)."""

SWARM_HEALTH_COLUMNS = [
    ("name", "endpoint / task"),
    ("node", "node"),
    ("probe", "nginx / scrape"),
    ("health", "health"),
    ("detail", "version / target"),
]
"""(key, label) of the Health panel's table in swarm mode: the endpoints
through nginx, then each task's scrape (Prometheus' ``up``) and health check
status (its node's engine)."""


def _age_cell(age: float | None, stale: bool, palette: Palette) -> Text:
    if age is None:
        return Text(NONE, style=palette.muted)
    text = fmt_duration(age, parts=1) if age >= 1 else "now"
    if stale:
        return Text(f"stale {text}", style=palette.warn)
    return Text(text, style=palette.muted)


def _pct(value: float | None, palette: Palette, warn: float, err: float) -> Text:
    if value is None:
        return Text(NONE, justify="right", style=palette.muted)
    return Text(f"{value:.1f}", justify="right", style=palette.level(value, warn, err))


def _mem(used: int | None, total: int | None) -> Text:
    if used is None:
        return Text(NONE, justify="right")
    return Text(f"{fmt_bytes(used)} / {fmt_bytes(total) if total else '∞'}", justify="right")


def node_stats_row(
    node: NodeStats, palette: Palette, *, cpu_alert: float = 80.0, mem_alert: float = 85.0
) -> Row:
    dim = palette.muted if node.stale else ""
    mem_pct = node.mem_percent
    return Row(
        key=f"node:{node.node}",
        cells=(
            Text(f"▣ {node.node}", style=f"bold {dim}".strip()),
            Text("node", style=palette.muted),
            _pct(None if node.stale else node.cpu_percent, palette, cpu_alert * 0.75, cpu_alert),
            _mem(node.mem_used, node.mem_total),
            _pct(None if node.stale else mem_pct, palette, mem_alert * 0.8, mem_alert),
            Text(
                f"{node.load1:.2f}" if node.load1 is not None and not node.stale else NONE,
                justify="right",
            ),
            _age_cell(node.age_seconds, node.stale, palette),
        ),
        search=f"{node.node} node",
    )


def task_stats_row(
    task: TaskStats, palette: Palette, *, cpu_alert: float = 80.0, mem_alert: float = 85.0
) -> Row:
    return Row(
        key=f"task:{task.name}",
        cells=(
            Text(f"  {task.short_name}", style=palette.muted if task.stale else ""),
            Text(task.node),
            _pct(task.cpu_percent, palette, cpu_alert * 0.75, cpu_alert),
            _mem(task.mem_usage, task.mem_limit),
            _pct(task.mem_percent, palette, mem_alert * 0.8, mem_alert),
            Text(""),
            _age_cell(task.age_seconds, task.stale, palette),
        ),
        search=f"{task.name} {task.service} {task.node}",
    )


def swarm_stats_rows(
    snapshot: SwarmStatsSnapshot,
    palette: Palette,
    *,
    cpu_alert: float = 80.0,
    mem_alert: float = 85.0,
) -> list[Row]:
    """Each node, then the tasks on it; tasks of a node without node stats last."""
    rows: list[Row] = []
    by_node: dict[str, list[TaskStats]] = {}
    for task in snapshot.tasks:
        by_node.setdefault(task.node, []).append(task)
    limits = {"cpu_alert": cpu_alert, "mem_alert": mem_alert}
    for node in snapshot.nodes:
        rows.append(node_stats_row(node, palette, **limits))
        rows.extend(task_stats_row(t, palette, **limits) for t in by_node.pop(node.node, []))
    for name in sorted(by_node):
        rows.append(
            Row(
                key=f"node:{name}",
                cells=(
                    Text(f"▣ {name}", style="bold"),
                    Text("no node exporter", style=palette.warn),
                    *(Text("") for _ in range(5)),
                ),
                search=name,
            )
        )
        rows.extend(task_stats_row(t, palette, **limits) for t in by_node[name])
    return rows


def swarm_stats_empty_reason(snapshot: SwarmStatsSnapshot) -> str | None:
    if not snapshot.available:
        return f"no stats per node · {snapshot.reason or snapshot.where + ' did not answer'}"
    if not snapshot.nodes and not snapshot.tasks:
        return (
            f"{snapshot.where} has no node or stack exporter samples yet "
            "(node_exporter and stack_exporter are global services of the stack)"
        )
    return None


def swarm_stats_title(snapshot: SwarmStatsSnapshot) -> str:
    stale = sum(1 for n in snapshot.nodes if n.stale)
    text = f"{len(snapshot.nodes)} nodes · {len(snapshot.tasks)} tasks"
    return text + (f" · {stale} stale" if stale else "")


def _health_cell(health: str, palette: Palette) -> Text:
    style = {
        "healthy": palette.ok,
        "unhealthy": f"bold {palette.err}",
        "starting": palette.warn,
    }.get(health, palette.muted)
    return Text("no check" if health == "none" else health, style=style)


def _scrape_cell(scrape: str | None, palette: Palette) -> Text:
    if scrape is None:
        return Text(NONE, style=palette.muted)
    if scrape == "up":
        return Text("up", style=palette.ok)
    return Text("✗ down", style=f"bold {palette.err}")


def task_health_row(item: TaskHealth, palette: Palette) -> Row:
    label = item.name or f"{item.service} ?"
    return Row(
        key=f"task:{item.task or item.address}",
        cells=(
            Text(f"  {label}", style=palette.muted if item.stale else ""),
            Text(item.node or NONE, style="" if item.node else palette.muted),
            _scrape_cell(item.scrape, palette),
            _health_cell(item.health if not item.stale else "unknown", palette),
            Text(item.address or NONE, style=palette.muted),
        ),
        search=f"{item.service} {item.name} {item.node} {item.address}",
    )


def swarm_health_rows(
    endpoints: list[Row], stats: SwarmStatsSnapshot | None, palette: Palette
) -> list[Row]:
    """The endpoint rows (through nginx), then a row per task: the tasks come
    from the monitoring; without it a row says why."""
    rows = list(endpoints)
    if stats is None:
        rows.append(_note_row("tasks: waiting for the monitoring…", palette))
    elif not stats.available:
        rows.append(_note_row(f"tasks: {stats.reason or 'Prometheus did not answer'}", palette))
    elif not stats.health:
        rows.append(_note_row("tasks: no task scraped or health-checked yet", palette))
    else:
        rows.extend(task_health_row(h, palette) for h in stats.health)
    return rows


def _note_row(text: str, palette: Palette) -> Row:
    return Row(
        key="tasks-note",
        cells=(Text(shorten(text, 60), style=palette.warn), *(Text("") for _ in range(4))),
        search=text,
    )
