"""Health panel: each health endpoint through nginx and against each colour.

A colour stopped on standby (``console.core.colours``) is not asked by the
health source; its column reads ``standby`` (dimmed) on every row, and the
title names it with its version instead of counting it. A running standby
colour is shown as it answers, a failure in the warning colour: it serves
nobody. The serving colour's failures stay red.

The last row, ``page``, is the web frontend's ``/version.json``: through
nginx (the page's serving colour) and per frontend colour
(``/direct/frontend_<colour>/``), its colours' roles from
:func:`~console.core.colours.frontend_roles` (the page may serve from
another colour than the API).

In swarm mode (no colours: one ``backend`` service, its tasks on any node)
the panel shows one table: the endpoints through nginx, then each task
Prometheus scrapes or the engine health-checks, with its node, the scrape
(``up``) and the health check status, from the monitoring
(:class:`~console.core.models.SwarmStatsSnapshot`, rows from
:mod:`console.ui.panels.swarm`).
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.reactive import var

from console.core.colours import colour_roles, frontend_roles
from console.core.models import (
    Colour,
    ColourStatus,
    ContainersSnapshot,
    EndpointResult,
    HealthSnapshot,
    SwarmSnapshot,
    SwarmStatsSnapshot,
)
from console.ui.format import NONE, shorten
from console.ui.palette import Palette
from console.ui.panels.base import Panel
from console.ui.panels.swarm import SWARM_HEALTH_COLUMNS, swarm_health_rows
from console.ui.widgets.table import ListTable, Row

__all__ = ["HealthPanel", "endpoint_cell", "short_error", "short_path"]

TARGETS = ("nginx", "blue", "green")
FRONTEND_PATH = "/version.json"
"""The frontend's row (``console.core.sources.health.FRONTEND_PATH``; the UI
does not import the sources)."""


def short_path(path: str) -> str:
    """``/api/health/database`` -> ``/database``; ``/api/health`` stays;
    the frontend's ``/version.json`` is ``page``."""
    if path == FRONTEND_PATH:
        return "page"
    if path.startswith("/api/health/"):
        return path[len("/api/health") :]
    return path


def short_error(error: str | None) -> str:
    """A cell-sized reason: ``refused``, ``timeout``, ``dns``, else the start of it."""
    text = (error or "no answer").lower()
    for needle, short in (
        ("refused", "refused"),
        ("timed out", "timeout"),
        ("timeout", "timeout"),
        ("name or service", "dns"),
        ("resolve", "dns"),
        ("reset", "reset"),
    ):
        if needle in text:
            return short
    return shorten(error or "no answer", 10)


def endpoint_cell(
    result: EndpointResult | None, palette: Palette, role: ColourStatus | None = None
) -> Text:
    """``200 12ms`` (ok), ``503 40ms`` (bad), ``✗ refused`` (no answer), NONE;
    ``standby`` for a colour stopped on standby (``role``), and a running
    standby colour's failure in the warning colour, not the error one."""
    if role is not None and role.role == "standby":
        return Text("standby", style=palette.muted)
    bad = (
        palette.warn
        if role is not None and role.role == "standby-running"
        else f"bold {palette.err}"
    )
    if result is None:
        return Text(NONE, style=palette.muted)
    if result.status is None:
        return Text(f"✗ {short_error(result.error)}", style=bad)
    latency = f" {result.latency_ms:.0f}ms" if result.latency_ms is not None else ""
    good = 200 <= result.status < 300
    slow = result.latency_ms is not None and result.latency_ms >= 1000
    style = palette.ok if good and not slow else (palette.warn if good else bad)
    mark = "" if good else "✗ "
    return Text(f"{mark}{result.status}{latency}", style=style)


class HealthPanel(Panel):
    """``/api/health`` and its sub-checks: status and latency per target."""

    PANEL_ID = "health"
    TITLE = "Health"
    NUMBER = 2
    SOURCES: ClassVar[tuple[str, ...]] = ("health",)

    snapshot: var[HealthSnapshot | None] = var(None, init=False)
    """The newest round of health checks."""
    containers: var[ContainersSnapshot | None] = var(None, init=False)
    """The newest container list: which colour serves and which is on standby."""
    swarm: var[SwarmSnapshot | None] = var(None, init=False)
    """The stack as a swarm sees it (which mode the panel is in)."""
    swarm_stats: var[SwarmStatsSnapshot | None] = var(None, init=False)
    """The monitoring's view of a swarm stack: each task's scrape and health."""

    SWARM_SOURCES: ClassVar[tuple[str, ...]] = ("health", "swarm-stats")
    """What makes the panel stale in swarm mode."""

    def __init__(
        self, *, stale_after: float | None = None, id: str | None = None, mode: str = "auto"
    ) -> None:
        super().__init__(stale_after=stale_after, id=id)
        self.forced_swarm = mode == "swarm"

    @property
    def swarm_mode(self) -> bool:
        """Whether the stack is a swarm stack (tasks instead of colours)."""
        if self.swarm is not None:
            return self.swarm.mode == "swarm"
        return self.forced_swarm

    def source_names(self) -> tuple[str, ...]:
        return self.SWARM_SOURCES if self.swarm_mode else self.SOURCES

    @property
    def table(self) -> ListTable | None:
        tables = self.query("#swarm-health-table" if self.swarm_mode else "#health-table")
        return tables.first(ListTable) if tables else None

    def watch_swarm(self) -> None:
        swarm = self.swarm_mode
        for table in self.query(ListTable):
            table.display = (table.id == "swarm-health-table") == swarm
        self.refresh_panel()

    def watch_swarm_stats(self) -> None:
        if self.swarm_mode:
            self.refresh_panel()

    def watch_containers(self) -> None:
        # A new container list every few seconds; the panel changes only when
        # a colour's role or version does.
        roles = (
            colour_roles(self.containers, self.snapshot),
            frontend_roles(self.containers) if self.containers is not None else None,
        )
        if roles != self._roles:
            self._roles = roles
            self.refresh_panel()

    _roles: tuple[dict[Colour, ColourStatus], dict[Colour, ColourStatus] | None] | None = None
    """The roles the panel was last drawn with (from ``watch_containers``)."""

    def compose_body(self) -> ComposeResult:
        compose = ListTable(
            [
                ("endpoint", "endpoint"),
                ("nginx", "nginx"),
                ("blue", "blue"),
                ("green", "green"),
                ("version", "version"),
            ],
            id="health-table",
        )
        compose.display = not self.forced_swarm
        yield compose
        swarm = ListTable(SWARM_HEALTH_COLUMNS, id="swarm-health-table")
        swarm.display = self.forced_swarm
        yield swarm

    def empty_reason(self, snapshot: HealthSnapshot) -> str | None:
        return None if snapshot.results else "no health endpoints checked yet"

    def title_detail(self, snapshot: HealthSnapshot) -> str:
        text = self._endpoints_detail(snapshot)
        if snapshot.tls_days_left is not None:
            left = snapshot.tls_days_left
            tls = "TLS cert expired" if left < 0 else f"TLS cert {left} d left"
            text = f"{text} · {tls}" if text else tls
        return text

    def _endpoints_detail(self, snapshot: HealthSnapshot) -> str:
        via_nginx = [r for r in snapshot.results if r.target == "nginx" and r.path != FRONTEND_PATH]
        if not via_nginx:
            return ""
        ok = sum(1 for r in via_nginx if r.status is not None and 200 <= r.status < 300)
        text = f"{ok}/{len(via_nginx)} ok via nginx"
        if self.swarm_mode:
            stats = self.swarm_stats
            scraped = [h for h in stats.health if h.scrape] if stats is not None else []
            if scraped:
                up = sum(1 for h in scraped if h.scrape == "up")
                text += f" · {up}/{len(scraped)} tasks up"
            return text
        for status in colour_roles(self.containers, snapshot).values():
            if status.is_standby:
                text += f" · {status.colour} standby"
                if status.version:
                    text += f" {status.version}"
                if status.role == "standby-running":
                    text += " (running)"
        return text

    def _render_swarm(self, snapshot: HealthSnapshot) -> None:
        palette = self.palette
        rows = []
        for result in snapshot.results:
            if result.target != "nginx":
                continue  # no colours on Swarm: the tasks come from the monitoring
            cells = (
                Text(short_path(result.path), style="bold"),
                Text(""),
                endpoint_cell(result, palette),
                Text(""),
                Text(result.version or "", style=palette.muted),
            )
            rows.append(Row(key=result.path, cells=cells, search=result.path))
        self.query_one("#swarm-health-table", ListTable).set_rows(
            swarm_health_rows(rows, self.swarm_stats, palette)
        )

    def render_snapshot(self, snapshot: HealthSnapshot) -> None:
        if self.swarm_mode:
            self._render_swarm(snapshot)
            return
        palette = self.palette
        roles: dict[str, ColourStatus] = {
            str(c): status for c, status in colour_roles(self.containers, snapshot).items()
        }
        fe_roles: dict[str, ColourStatus] = (
            {str(c): status for c, status in frontend_roles(self.containers).items()}
            if self.containers is not None
            else {}
        )
        paths: list[str] = []
        by_key: dict[tuple[str, str], EndpointResult] = {}
        for result in snapshot.results:
            if result.path not in paths:
                paths.append(result.path)
            by_key[(result.path, result.target)] = result
        rows = []
        for path in paths:
            cells = [Text(short_path(path), style="bold")]
            of = fe_roles if path == FRONTEND_PATH else roles
            cells += [endpoint_cell(by_key.get((path, t)), palette, of.get(t)) for t in TARGETS]
            nginx = by_key.get((path, "nginx"))
            versions = []
            if nginx is not None and nginx.version:
                versions.append(nginx.version)
            else:
                for colour in ("blue", "green"):
                    r = by_key.get((path, colour))
                    if r is not None and r.version:
                        versions.append(f"{colour[0]}:{r.version}")
            cells.append(Text(" ".join(versions), style=palette.muted if not versions else ""))
            rows.append(Row(key=path, cells=tuple(cells), search=path))
        self.query_one("#health-table", ListTable).set_rows(rows)
