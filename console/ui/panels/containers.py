"""Containers panel: every container of the compose project, and who serves.

A backend colour that does not serve is on standby (``console.core.colours``):
stopped, its row is dimmed and says ``stopped`` / ``standby`` instead of a red
``exited``, and the title says which version it keeps for a rollback or a
roll-forward; running, it reads ``✓ standby`` (a failing check is a warning,
not an error: it serves nobody). The colour nginx routes to stays red when
it does not run.

When the stack is a swarm stack (the ``swarm`` snapshot says so, or
``Settings.mode`` is ``swarm``) the panel shows services -> tasks -> nodes
instead (:mod:`console.ui.panels.swarm`), in a table of its own; the
compose table is hidden, and the panel is stale when the swarm source fails.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.reactive import var
from textual.widgets import DataTable

from console.core.colours import colour_roles, frontend_roles, is_frontend
from console.core.models import ColourStatus, ContainerInfo, ContainersSnapshot, SwarmSnapshot
from console.ui.format import NONE, fmt_age, shorten
from console.ui.palette import Palette
from console.ui.panels.base import ContainerSelected, Panel
from console.ui.panels.swarm import (
    SWARM_COLUMNS,
    swarm_empty_reason,
    swarm_rows,
    swarm_title,
)
from console.ui.widgets.table import ListTable, Row

__all__ = ["ContainersPanel", "container_row", "short_port", "standby_note"]

_STATE_ORDER = {"running": 0, "restarting": 1, "paused": 2, "created": 3, "exited": 4, "dead": 5}


def short_port(port: str) -> str:
    """``127.0.0.1:80->80/tcp`` -> ``:80→80``; other host addresses are kept."""
    text = port.removesuffix("/tcp")
    for local in ("127.0.0.1", "0.0.0.0", "[::]", "::"):
        if text.startswith(local + ":"):
            text = text[len(local) :]
            break
    return text.replace("->", "→")


WIDE = 90
"""Panel width from which the standby note is written in full."""


def standby_note(status: ColourStatus, *, wide: bool) -> str:
    """``blue v1.2.2 kept for rollback/roll-forward`` (``standby`` when narrow),
    ``blue v1.2.2 standby (running)``; empty for a colour that is not on standby."""
    name = " ".join(p for p in (status.colour, status.version) if p)
    if status.role == "standby":
        return f"{name} {'kept for rollback/roll-forward' if wide else 'standby'}"
    if status.role == "standby-running":
        return f"{name} standby (running)"
    return ""


def container_row(
    info: ContainerInfo,
    snapshot: ContainersSnapshot,
    palette: Palette,
    now_text: str,
    role: ColourStatus | None = None,
) -> Row:
    """One table row for a container (``now_text`` is its uptime, precomputed;
    ``role`` its colour's role, for a backend colour)."""
    if role is not None and role.role == "standby":
        return _stopped_standby_row(info, palette)
    serving_colour = snapshot.serving_frontend if is_frontend(info) else snapshot.serving_colour
    serving = info.colour is not None and info.colour == serving_colour
    colour = Text(info.colour or "", style=palette.colour(info.colour))
    if serving:
        colour.append(" ●", style=palette.colour(info.colour))
    state_style = {
        "running": palette.ok,
        "restarting": f"bold {palette.warn}",
        "paused": palette.warn,
        "created": palette.warn,
    }.get(info.state, f"bold {palette.err}")
    health = info.health
    if health == "healthy":
        health_cell = Text("✓ healthy", style=palette.ok)
    elif health == "unhealthy":
        health_cell = Text("✗ unhealthy", style=f"bold {palette.err}")
    elif health == "starting":
        health_cell = Text("… starting", style=palette.warn)
    else:
        health_cell = Text(NONE, style=palette.muted)
    if role is not None and role.role == "standby-running":
        # The rollback target: healthy is what it should be; anything else is
        # worth a look but is no outage (it serves nobody).
        if health in ("healthy", None) and info.state == "running":
            health_cell = Text("✓ standby", style=palette.ok)
        elif health == "unhealthy":
            health_cell = Text("✗ unhealthy", style=palette.warn)
        if info.state != "running":
            state_style = palette.warn
    elif role is not None and role.role == "down" and health != "unhealthy":
        health_cell = Text("✗ down", style=f"bold {palette.err}")
    restarts = Text(
        str(info.restart_count),
        justify="right",
        style=palette.warn if info.restart_count else palette.muted,
    )
    image = f"{info.image}:{info.tag}" if info.tag else info.image
    cells = (
        Text(info.service, style="bold"),
        colour,
        Text(info.state, style=state_style),
        health_cell,
        Text(now_text, justify="right"),
        restarts,
        Text(shorten(image, 28)),
        Text(shorten(" ".join(short_port(p) for p in info.ports), 18), style=palette.muted),
    )
    words = [info.name, info.service, info.colour or "", image, info.state, health or ""]
    if role is not None and role.is_standby:
        words.append("standby")
    return Row(key=info.name, cells=cells, search=" ".join(words))


def _stopped_standby_row(info: ContainerInfo, palette: Palette) -> Row:
    """A colour stopped on purpose: dimmed, ``stopped`` and ``standby``, never red."""
    muted = palette.muted
    image = f"{info.image}:{info.tag}" if info.tag else info.image
    cells = (
        Text(info.service, style=muted),
        Text(info.colour or "", style=f"{palette.colour(info.colour)} dim"),
        Text("stopped", style=muted),
        Text("◌ standby", style=muted),
        Text(NONE, justify="right", style=muted),
        Text(str(info.restart_count), justify="right", style=muted),
        Text(shorten(image, 28), style=muted),
        Text(shorten(" ".join(short_port(p) for p in info.ports), 18), style=muted),
    )
    search = " ".join([info.name, info.service, info.colour or "", image, info.state, "standby"])
    return Row(key=info.name, cells=cells, search=search)


class ContainersPanel(Panel):
    """Service, colour, image, state, health, uptime, restarts, ports."""

    PANEL_ID = "containers"
    TITLE = "Containers"
    NUMBER = 1
    SOURCES: ClassVar[tuple[str, ...]] = ("engine", "containers", "docker")
    FILTERABLE = True

    snapshot: var[ContainersSnapshot | None] = var(None, init=False)
    """The newest container list."""
    swarm: var[SwarmSnapshot | None] = var(None, init=False)
    """The stack as a swarm sees it, or why it is a compose project."""

    SWARM_SOURCES: ClassVar[tuple[str, ...]] = ("swarm",)
    """What makes the panel stale in swarm mode."""

    _wide = False
    """Whether the title was last written for a panel ``WIDE`` columns or more."""

    def __init__(
        self, *, stale_after: float | None = None, id: str | None = None, mode: str = "auto"
    ) -> None:
        """``mode``: ``Settings.mode``; ``swarm`` shows the swarm table from
        the start (its source's failure, before any snapshot, says why)."""
        super().__init__(stale_after=stale_after, id=id)
        self.forced_swarm = mode == "swarm"

    @property
    def swarm_mode(self) -> bool:
        """Whether the panel shows services -> tasks -> nodes."""
        swarm = self.swarm
        if swarm is not None:
            return swarm.mode == "swarm"
        return self.forced_swarm

    def shown_snapshot(self) -> ContainersSnapshot | SwarmSnapshot | None:
        return self.swarm if self.swarm_mode else self.snapshot

    def source_names(self) -> tuple[str, ...]:
        return self.SWARM_SOURCES if self.swarm_mode else self.SOURCES

    @property
    def table(self) -> ListTable | None:
        """The table shown: the swarm one in swarm mode."""
        tables = self.query("#swarm-table" if self.swarm_mode else "#containers-table")
        return tables.first(ListTable) if tables else None

    def watch_swarm(self) -> None:
        swarm = self.swarm_mode
        focused = any(t.has_focus for t in self.query(ListTable))
        for table in self.query(ListTable):
            table.display = (table.id == "swarm-table") == swarm
        self.refresh_panel()
        shown = self.table
        if focused and shown is not None and not shown.has_focus:
            shown.focus()

    def compose_body(self) -> ComposeResult:
        compose = ListTable(
            [
                ("service", "service"),
                ("colour", "colour"),
                ("state", "state"),
                ("health", "health"),
                ("up", "up>"),
                ("restarts", "rst>"),
                ("image", "image"),
                ("ports", "ports"),
            ],
            id="containers-table",
        )
        compose.display = not self.forced_swarm
        yield compose
        swarm = ListTable(SWARM_COLUMNS, id="swarm-table")
        swarm.display = self.forced_swarm
        yield swarm

    def empty_reason(self, snapshot: ContainersSnapshot | SwarmSnapshot) -> str | None:
        if isinstance(snapshot, SwarmSnapshot):
            return swarm_empty_reason(snapshot)
        if snapshot.containers:
            return None
        text = (
            f"no containers in compose project {snapshot.project!r} · "
            "is the stack up? (scripts/setup.sh)"
        )
        swarm = self.swarm
        if swarm is not None and swarm.reason and "not part of a swarm" not in swarm.reason:
            # the engine is in a swarm, but no stack was found: say why
            text += f" · swarm: {swarm.reason}"
        return text

    def title_detail(self, snapshot: ContainersSnapshot | SwarmSnapshot) -> str:
        if isinstance(snapshot, SwarmSnapshot):
            return swarm_title(snapshot)
        running = sum(1 for c in snapshot.containers if c.state == "running")
        text = f"{running}/{len(snapshot.containers)} running"
        roles = colour_roles(snapshot, None)
        if snapshot.serving_colour:
            text += f" · serving {snapshot.serving_colour}"
            if roles[snapshot.serving_colour].role == "down":
                text += " ✗ down"
        page = snapshot.serving_frontend
        if page and any(is_frontend(c) for c in snapshot.containers):
            status = frontend_roles(snapshot)[page]
            text += f" · page {page}" + (f" {status.version}" if status.version else "")
            if status.role == "down":
                text += " ✗ down"
        wide = self._wide = self.size.width >= WIDE
        for status in roles.values():
            if note := standby_note(status, wide=wide):
                text += f" · {note}"
        return text

    def on_resize(self) -> None:
        # The standby note is written in full only where it fits: the title
        # again when the panel crossed that width, nothing else.
        snapshot = self.snapshot
        wide = self.size.width >= WIDE
        if snapshot is not None and not self.swarm_mode and wide != self._wide:
            self._wide = wide
            detail = self.title_detail(snapshot)
            self.set_title(f"{self.TITLE} · {detail}" if detail else self.TITLE)

    def render_snapshot(self, snapshot: ContainersSnapshot | SwarmSnapshot) -> None:
        if isinstance(snapshot, SwarmSnapshot):
            self.query_one("#swarm-table", ListTable).set_rows(
                swarm_rows(snapshot, self.palette, self.now)
            )
            return
        palette = self.palette
        roles = colour_roles(snapshot, None)
        page_roles = frontend_roles(snapshot)
        ordered = sorted(
            snapshot.containers,
            key=lambda c: (_STATE_ORDER.get(c.state, 9), c.service, c.name),
        )
        rows = [
            container_row(
                c,
                snapshot,
                palette,
                fmt_age(self.now, c.started_at) if c.state == "running" and c.started_at else NONE,
                (page_roles if is_frontend(c) else roles).get(c.colour) if c.colour else None,
            )
            for c in ordered
        ]
        table = self.query_one("#containers-table", ListTable)
        table.set_rows(rows)

    @on(DataTable.RowHighlighted)
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        if event.data_table.id != "containers-table":
            return  # a service, task or node: no container of this engine
        if event.data_table.has_focus and event.row_key.value:
            self.post_message(ContainerSelected(str(event.row_key.value)))
