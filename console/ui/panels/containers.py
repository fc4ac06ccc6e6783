"""Containers panel: every container of the compose project, and who serves."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.reactive import var
from textual.widgets import DataTable

from console.core.models import ContainerInfo, ContainersSnapshot
from console.ui.format import NONE, fmt_age, shorten
from console.ui.palette import Palette
from console.ui.panels.base import ContainerSelected, Panel
from console.ui.widgets.table import ListTable, Row

__all__ = ["ContainersPanel", "container_row", "short_port"]

_STATE_ORDER = {"running": 0, "restarting": 1, "paused": 2, "created": 3, "exited": 4, "dead": 5}


def short_port(port: str) -> str:
    """``127.0.0.1:80->80/tcp`` -> ``:80→80``; other host addresses are kept."""
    text = port.removesuffix("/tcp")
    for local in ("127.0.0.1", "0.0.0.0", "[::]", "::"):
        if text.startswith(local + ":"):
            text = text[len(local) :]
            break
    return text.replace("->", "→")


def container_row(
    info: ContainerInfo, snapshot: ContainersSnapshot, palette: Palette, now_text: str
) -> Row:
    """One table row for a container (``now_text`` is its uptime, precomputed)."""
    serving = info.colour is not None and info.colour == snapshot.serving_colour
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
    search = " ".join([info.name, info.service, info.colour or "", image, info.state, health or ""])
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

    def compose_body(self) -> ComposeResult:
        yield ListTable(
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

    def empty_reason(self, snapshot: ContainersSnapshot) -> str | None:
        if snapshot.containers:
            return None
        return (
            f"no containers in compose project {snapshot.project!r} · "
            "is the stack up? (scripts/setup.sh)"
        )

    def title_detail(self, snapshot: ContainersSnapshot) -> str:
        running = sum(1 for c in snapshot.containers if c.state == "running")
        text = f"{running}/{len(snapshot.containers)} running"
        if snapshot.serving_colour:
            text += f" · serving {snapshot.serving_colour}"
        return text

    def render_snapshot(self, snapshot: ContainersSnapshot) -> None:
        palette = self.palette
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
            )
            for c in ordered
        ]
        table = self.query_one(ListTable)
        table.set_rows(rows)

    @on(DataTable.RowHighlighted)
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        if event.data_table.has_focus and event.row_key.value:
            self.post_message(ContainerSelected(str(event.row_key.value)))
