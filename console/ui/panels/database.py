"""Slow queries panel: pg_stat_statements top list plus the database's vitals
(sessions, connections, size, dead tuples and their last vacuum)."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.content import Content
from textual.reactive import var

from console.core.models import DatabaseSnapshot, SlowQuery
from console.ui.format import fmt_age, fmt_bytes, fmt_count, fmt_duration, shorten
from console.ui.palette import Palette
from console.ui.panels.base import Panel
from console.ui.widgets.table import ListTable, Row
from console.ui.widgets.text import LiveText

__all__ = ["DatabasePanel", "query_row"]

LONG_QUERY_S = 60.0
"""A session active for longer than this is called out (and warns before VACUUM)."""


def query_row(index: int, query: SlowQuery, palette: Palette) -> Row:
    mean_style = palette.level(query.mean_ms, 500, 2000)
    cells = (
        Text(f"{query.mean_ms:,.1f}", justify="right", style=mean_style),
        Text(fmt_count(query.calls), justify="right"),
        Text(fmt_count(query.rows), justify="right"),
        Text(f"{query.total_ms / 1000:,.1f}s", justify="right", style=palette.muted),
        Text(shorten(query.query, 200)),
    )
    # Two statements may normalise to the same text: key by rank too.
    return Row(key=f"{index}:{hash(query.query)}", cells=cells, search=query.query)


class DatabasePanel(Panel):
    """Top statements by mean time, sessions, connections, size, dead tuples."""

    PANEL_ID = "database"
    TITLE = "Slow queries"
    SHORT = "Queries"
    NUMBER = 4
    SOURCES: ClassVar[tuple[str, ...]] = ("postgres", "database")
    FILTERABLE = True

    snapshot: var[DatabaseSnapshot | None] = var(None, init=False)
    """The newest database snapshot."""

    def compose_body(self) -> ComposeResult:
        yield LiveText(classes="summary")
        yield ListTable(
            [
                ("mean", "mean ms>"),
                ("calls", "calls>"),
                ("rows", "rows>"),
                ("total", "total>"),
                ("query", "query"),
            ],
            id="queries-table",
        )
        yield LiveText(classes="tables")

    def title_detail(self, snapshot: DatabaseSnapshot) -> str:
        return f"{len(snapshot.slow_queries)} statements"

    def render_snapshot(self, snapshot: DatabaseSnapshot) -> None:
        palette = self.palette
        rows = [query_row(i, q, palette) for i, q in enumerate(snapshot.slow_queries)]
        self.query_one(ListTable).set_rows(rows)
        self.query_one(".summary", LiveText).update(self._summary(snapshot))
        self.query_one(".tables", LiveText).update(self._dead_tuples(snapshot))

    def _summary(self, snapshot: DatabaseSnapshot) -> Content:
        ratio = snapshot.connections / snapshot.max_connections if snapshot.max_connections else 0
        conn_style = "$error bold" if ratio >= 0.9 else ("$warning" if ratio >= 0.75 else "")
        parts: list[str | tuple[str, str]] = [
            "connections ",
            (f"{snapshot.connections}/{snapshot.max_connections or '?'}", conn_style),
            f" · size {fmt_bytes(snapshot.db_size_bytes)}",
        ]
        if snapshot.schema_version:
            parts.append(f" · schema {snapshot.schema_version}")
        sessions = snapshot.sessions
        if sessions:
            longest = max(sessions, key=lambda s: s.duration_s or 0.0)
            duration = longest.duration_s or 0.0
            style = "$warning bold" if duration >= LONG_QUERY_S else ""
            parts += [
                f"\nsessions {len(sessions)} active · longest ",
                (fmt_duration(duration), style),
                f" pid {longest.pid} ",
                (shorten(longest.query, 60), "dim"),
            ]
        else:
            parts.append("\nno active sessions")
        return Content.assemble(*parts)

    def _dead_tuples(self, snapshot: DatabaseSnapshot) -> Content:
        tables = [t for t in snapshot.tables if t.dead_tuples > 0][:4]
        if not tables:
            return Content.styled("dead tuples: none", "dim")
        parts: list[str | tuple[str, str]] = ["dead tuples: "]
        for index, table in enumerate(tables):
            last = max(
                (d for d in (table.last_vacuum, table.last_autovacuum) if d is not None),
                default=None,
            )
            vacuumed = f"vacuum {fmt_age(self.now, last)} ago" if last else "never vacuumed"
            ratio = table.dead_tuples / max(1, table.live_tuples + table.dead_tuples)
            if index:
                parts.append(" · ")
            parts += [
                f"{table.table} ",
                (fmt_count(table.dead_tuples), "$warning bold" if ratio >= 0.2 else "bold"),
                (f" ({vacuumed})", "dim"),
            ]
        return Content.assemble(*parts)
