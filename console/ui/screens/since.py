"""Since the deploy: the window before the last deploy against the window after it.

Endpoints (p95, error rate), services (CPU, memory), and the statements of
pg_stat_statements that got slower or are new since the snapshot the ops
engine took at the deploy. Loaded when the screen opens and on ``r``.

| key | action |
|---|---|
| r | compare again (now) |
| escape, q | back to the dashboard |
"""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import Footer, Label

from console.core.models import Comparison, SinceDeploySnapshot, StatementChange
from console.core.since import verdict
from console.ui.format import fmt_duration, fmt_time, shorten
from console.ui.screens.base import OverDashboard
from console.ui.widgets.table import ListTable, Row
from console.ui.widgets.text import LiveText

__all__ = ["SinceDeployScreen", "change_text", "comparison_row", "statement_row"]


def _num(value: float | None, unit: str) -> str:
    """A compared value in the unit ``console.core.since`` gives it."""
    if value is None or value != value:
        return "–"
    if unit == "ms":
        return f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"
    if unit == "%":
        return f"{value:.2f}%" if value < 10 else f"{value:.1f}%"
    if unit == "MiB":
        return f"{value:.0f} MiB"
    if unit == "/s":
        return f"{value:.2f}/s"
    return f"{value:.3g}{(' ' + unit) if unit else ''}"


def change_text(item: Comparison) -> Text:
    """``×2.4``: red when it got worse, green when better (``since.verdict``:
    by ``WORSE_RATIO`` and more than the metric's noise floor), plain otherwise."""
    before, after = item.before, item.after
    if before is None or after is None:
        return Text("new" if before is None and after is not None else "–", justify="right")
    text = ("–" if after == 0 else "from 0") if before == 0 else f"×{after / before:.2f}"
    style = {1: "bold red", -1: "green", 0: ""}[verdict(item)]
    return Text(text, justify="right", style=style)


def comparison_row(item: Comparison) -> Row:
    change = change_text(item)
    cells = (
        Text(item.subject, style="bold"),
        Text(item.metric),
        Text(_num(item.before, item.unit), justify="right"),
        Text(_num(item.after, item.unit), justify="right"),
        change,
    )
    key = f"{item.group}|{item.subject}|{item.metric}"
    return Row(key=key, cells=cells, search=f"{item.subject} {item.metric}")


def statement_row(item: StatementChange) -> Row:
    cells = (
        Text("NEW" if item.new else "slower", style="yellow" if item.new else "bold red"),
        Text(_num(item.mean_ms_before, "ms") if not item.new else "–", justify="right"),
        Text(_num(item.mean_ms_after, "ms"), justify="right"),
        Text(f"×{item.ratio:.1f}" if item.ratio else "–", justify="right"),
        Text(str(item.calls_after), justify="right"),
        Text(shorten(" ".join(item.query.split()), 200)),
    )
    return Row(key=item.queryid, cells=cells, search=item.query)


class SinceDeployScreen(OverDashboard):
    """What changed since the last deploy: what triage needs first."""

    BINDINGS = [
        Binding("escape,q", "app.pop_screen", "Back", id="since.back"),
        Binding("r", "reload", "Compare again", id="since.reload"),
    ]

    def __init__(self) -> None:
        super().__init__(id="since-screen")
        self.snapshot: SinceDeploySnapshot | None = None

    def compose(self) -> ComposeResult:
        yield LiveText(id="since-title", classes="screen-title")
        with Vertical(id="since-body"):
            yield Label("Endpoints and services: before → after", classes="section-title")
            yield ListTable(
                [
                    ("subject", "endpoint / service"),
                    ("metric", "metric"),
                    ("before", "before>"),
                    ("after", "after>"),
                    ("change", "change>"),
                ],
                id="since-comparisons",
            )
            yield Label("Statements (pg_stat_statements): slower and new", classes="section-title")
            yield ListTable(
                [
                    ("kind", "what"),
                    ("before", "mean before>"),
                    ("after", "mean after>"),
                    ("ratio", "×>"),
                    ("calls", "calls after>"),
                    ("query", "query"),
                ],
                id="since-statements",
            )
            yield LiveText(id="since-warnings", classes="screen-note")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self._title(Content.styled("comparing…", "dim"))
        self.query_one("#since-comparisons", ListTable).focus()
        self.action_reload()

    def _title(self, detail: Content) -> None:
        self.query_one("#since-title", LiveText).update(
            Content.assemble(("Since the deploy", "bold"), "  ", detail)
        )

    @work(group="since", exclusive=True, exit_on_error=False)
    async def action_reload(self) -> None:
        try:
            snapshot = await self.dash.stack_app.since_deploy()
        except Exception as exc:  # timeout, no database: say so, keep the last result
            reason = str(exc) or type(exc).__name__
            self._title(Content.styled(f"could not compare: {shorten(reason, 160)}", "$error"))
            return
        self.show(snapshot)

    def show(self, snapshot: SinceDeploySnapshot) -> None:
        self.snapshot = snapshot
        now = self.dash.now
        deploy = snapshot.deploy
        if deploy is None:
            self._title(Content.styled("no deploy on record", "$warning"))
        else:
            window = fmt_duration(snapshot.window_seconds, parts=2)
            self._title(
                Content.assemble(
                    (deploy.label, "bold"),
                    f" · {fmt_time(deploy.at, now)} · {window} before vs {window} after",
                )
            )
        rank = {"p95": 0, "error rate": 1, "cpu": 2, "memory": 3}
        worse = sorted(
            snapshot.comparisons,
            key=lambda c: (rank.get(c.metric, 9), -verdict(c), -(c.change or 0.0), c.subject),
        )
        self.query_one("#since-comparisons", ListTable).set_rows([comparison_row(c) for c in worse])
        statements = [*snapshot.slower, *snapshot.new_statements]
        self.query_one("#since-statements", ListTable).set_rows(
            [statement_row(s) for s in statements]
        )
        notes = [f"! {w}" for w in snapshot.warnings]
        if not statements and deploy is not None and snapshot.statements_snapshot_at:
            notes.insert(0, "no statement got slower, and none is new, since then")
        self.query_one("#since-warnings", LiveText).update(
            Content.styled("\n".join(notes), "$warning") if notes else ""
        )
