"""The base of every panel: one snapshot in, a stale marker, an empty state.

A panel is a bordered container with a typed ``snapshot`` reactive (bound to
the app's state with ``data_bind``), the shared ``sources`` and ``now``
reactives, and a ``render_snapshot`` method its subclass implements. The
base class owns what is the same everywhere:

- the stale marker in the border subtitle, ``stale 42s · postgres:
  connection refused``, from the ``SourceState`` of the panel's sources (or
  from the snapshot's own age when a source went quiet without failing);
- the placeholder shown instead of the body while there is nothing to show
  (``waiting for data…``, ``no data · engine: permission denied``, or the
  panel's own "empty" sentence);
- the filter bar of panels with long lists (``/``).

Panels never reach for Docker, SQL or HTTP: they render models.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.message import Message
from textual.reactive import var
from textual.widget import Widget
from textual.widgets import Input

from console.core.models import Snapshot, SourceState
from console.ui.format import fmt_age, fmt_duration, seconds_between
from console.ui.palette import Palette
from console.ui.widgets.table import ListTable
from console.ui.widgets.text import LiveText

__all__ = ["EPOCH", "ContainerSelected", "FilterBar", "Panel"]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
"""Placeholder for ``now`` before the first clock tick."""


class ContainerSelected(Message):
    """The operator moved the cursor onto a container (stats chart, logs, restart)."""

    def __init__(self, container: str) -> None:
        super().__init__()
        self.container = container


class FilterBar(Input):
    """The ``/`` filter of a list panel; Escape clears and closes it."""

    BINDINGS = [
        Binding(
            "escape",
            "close",
            "Close filter",
            show=False,
            id="filter.close",
            tooltip="Clear the filter and return to the list",
        ),
    ]

    def action_close(self) -> None:
        panel = self.parent
        if isinstance(panel, Panel):
            panel.close_filter(clear=True)


class Panel(Vertical):
    """A bordered panel that renders one snapshot kind.

    Subclasses set the class variables, declare a typed ``snapshot``
    reactive, and implement :meth:`compose_body` and :meth:`render_snapshot`.
    """

    PANEL_ID: ClassVar[str] = ""
    """DOM id and tab id: ``containers``, ``health``, ..."""
    TITLE: ClassVar[str] = ""
    """Shown in the border and the tab."""
    SHORT: ClassVar[str] = ""
    """Tab label (defaults to the title)."""
    NUMBER: ClassVar[int] = 0
    """The digit key that shows this panel."""
    SOURCES: ClassVar[tuple[str, ...]] = ()
    """Names of the ``SourceState`` entries whose failure makes this panel stale
    (both the source name and the snapshot kind are accepted)."""
    FILTERABLE: ClassVar[bool] = False
    """Whether ``/`` opens a filter on this panel's table."""
    WAITING: ClassVar[str] = "waiting for data…"

    snapshot: var[Any] = var(None, init=False)
    """The newest snapshot of this panel's kind (subclasses narrow the type)."""
    sources: var[dict[str, SourceState]] = var(dict, init=False)
    """Liveness of every source, by name (bound to the app)."""
    now: var[datetime] = var(EPOCH, init=False)
    """The app's clock, ticking once a second (bound to the app)."""
    stale_marker: var[str] = var("", init=False)
    """The current stale text, empty when the data is fresh."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.SHORT:
            cls.SHORT = cls.TITLE

    def __init__(self, *, stale_after: float | None = None, id: str | None = None) -> None:
        super().__init__(id=id or self.PANEL_ID, classes="panel")
        self.stale_after = stale_after
        """Seconds without a new snapshot after which the panel calls itself
        stale even if no source reported a failure (a hung source)."""
        self._title = self.TITLE
        self.border_title = self.TITLE

    # --- composition -----------------------------------------------------

    def compose(self) -> ComposeResult:
        if self.FILTERABLE:
            yield FilterBar(placeholder="filter… (enter: keep, esc: clear)", classes="filter")
        yield LiveText(self.WAITING, classes="placeholder")
        with Vertical(classes="body"):
            yield from self.compose_body()

    def compose_body(self) -> ComposeResult:
        """The widgets showing the data (hidden while the panel is empty)."""
        yield from ()

    def on_mount(self) -> None:
        self.refresh_panel()

    # --- what subclasses implement --------------------------------------

    def render_snapshot(self, snapshot: Any) -> None:
        """Update the body widgets from a (non-None) snapshot."""

    def empty_reason(self, snapshot: Any) -> str | None:
        """A sentence to show instead of the body when the snapshot has nothing
        in it (``no containers in project x``), else None."""
        return None

    def title_detail(self, snapshot: Any) -> str:
        """A few words after the title (``7 · 6 running``)."""
        return ""

    def on_tick(self) -> None:
        """Called every clock tick; panels with countdowns re-render here."""

    def shown_snapshot(self) -> Any:
        """The snapshot the panel renders: ``snapshot``, unless a panel that
        renders one of two kinds says otherwise (Containers in swarm mode)."""
        return self.snapshot

    def source_names(self) -> tuple[str, ...]:
        """The sources whose failure makes the panel stale (``SOURCES``,
        unless the panel shows another kind now)."""
        return self.SOURCES

    # --- shared behaviour ----------------------------------------------

    @property
    def palette(self) -> Palette:
        try:
            return Palette.from_app(self.app)
        except Exception:  # no app (unit use)
            return Palette()

    @property
    def table(self) -> ListTable | None:
        """The panel's filterable list, if it has one."""
        tables = self.query(ListTable)
        return tables.first() if tables else None

    def watch_snapshot(self) -> None:
        self.refresh_panel()

    def watch_sources(self) -> None:
        self._refresh_status()

    def watch_now(self) -> None:
        self._refresh_status()
        if self.shown_snapshot() is not None and self.is_mounted:
            self.on_tick()

    def tick(self, now: datetime) -> None:
        """The clock's second, from the dashboard, which does not bind
        ``now`` to its panels: ten watchers a second for what moves with the
        clock on one or two of them (issue 15, fourth pass). ``now`` is
        kept for the next render either way; the panel redraws only when
        something it shows moves with the clock: a countdown of its own
        (a panel that implements :meth:`on_tick`), or its stale marker and
        placeholder (a source failing, no snapshot yet, a stale marker
        shown, or the snapshot older than ``stale_after``)."""
        self.set_reactive(Panel.now, now)
        if self._moves_with_clock(now):
            self.watch_now()

    def _moves_with_clock(self, now: datetime) -> bool:
        if type(self).on_tick is not Panel.on_tick or self.stale_marker:
            return True
        snapshot: Snapshot | None = self.shown_snapshot()
        if snapshot is None or self.failing_source() is not None:
            return True
        return self.stale_after is not None and (
            seconds_between(now, snapshot.taken_at) > self.stale_after
        )

    def watch_stale_marker(self, marker: str) -> None:
        self.set_class(bool(marker), "-stale")
        self.border_subtitle = Content(marker) if marker else ""

    def set_title(self, title: str) -> None:
        """Set the border title; no repaint when it is unchanged (the setter
        repaints the whole panel on every assignment)."""
        if title != self._title:
            self._title = title
            self.border_title = title

    def refresh_panel(self) -> None:
        if not self.is_mounted:
            return
        snapshot = self.shown_snapshot()
        placeholder = self.query_one(".placeholder", LiveText)
        reason: str | None
        if snapshot is None:
            reason = self._no_data_reason()
        else:
            reason = self.empty_reason(snapshot)
        if reason is None:
            self.remove_class("-empty")
            self.render_snapshot(snapshot)
        else:
            self.add_class("-empty")
            placeholder.update(Content(reason))
        detail = self.title_detail(snapshot) if snapshot is not None else ""
        self.set_title(f"{self.TITLE} · {detail}" if detail else self.TITLE)
        self._refresh_status()

    def failing_source(self, sources: dict[str, SourceState] | None = None) -> SourceState | None:
        """The first of this panel's sources that is not ok (in ``sources``,
        default the panel's own bound copy)."""
        states = self.sources if sources is None else sources
        for name in self.source_names():
            state = states.get(name)
            if state is not None and not state.ok:
                return state
        return None

    def _no_data_reason(self) -> str:
        failing = self.failing_source()
        if failing is None:
            return self.WAITING
        text = f"no data · {failing.name}: {failing.last_error or 'not reachable'}"
        if failing.next_retry is not None and self.now != EPOCH:
            wait = seconds_between(failing.next_retry, self.now)
            if wait > 0:
                text += f" · retry in {fmt_duration(wait, parts=1)}"
        return text

    def stale_text(self) -> str:
        """``stale 42s · postgres: connection refused``, or empty when fresh."""
        snapshot: Snapshot | None = self.shown_snapshot()
        failing = self.failing_source()
        if failing is not None:
            if snapshot is None:
                # The body already says why in full; the border just flags it.
                return f"no data · {failing.name} down"
            reference = failing.last_ok or snapshot.taken_at
            return (
                f"stale {fmt_age(self.now, reference)} · "
                f"{failing.name}: {failing.last_error or 'not reachable'}"
            )
        if snapshot is not None and self.stale_after is not None and self.now != EPOCH:
            age_s = seconds_between(self.now, snapshot.taken_at)
            if age_s > self.stale_after:
                return f"stale {fmt_age(self.now, snapshot.taken_at)} · no update"
        return ""

    def _refresh_status(self) -> None:
        if self.is_mounted:
            self.stale_marker = self.stale_text()
            if self.shown_snapshot() is None:
                placeholder = self.query_one(".placeholder", LiveText)
                placeholder.update(Content(self._no_data_reason()))

    # --- filter ----------------------------------------------------------

    def open_filter(self) -> bool:
        """Show and focus the filter bar; False when this panel has no filter."""
        if not self.FILTERABLE:
            return False
        bar = self.query_one(FilterBar)
        bar.add_class("-open")
        bar.focus()
        return True

    def close_filter(self, *, clear: bool) -> None:
        bar = self.query_one(FilterBar)
        if clear:
            bar.value = ""
        if not bar.value:
            bar.remove_class("-open")
        table = self.table
        if table is not None:
            table.focus()

    @on(FilterBar.Changed)
    def _filter_changed(self, event: Input.Changed) -> None:
        event.stop()
        table = self.table
        if table is not None:
            table.filter_text = event.value

    @on(FilterBar.Submitted)
    def _filter_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.close_filter(clear=False)

    def focus_default(self) -> bool:
        """Focus the panel's main widget (its table, or its first focusable);
        False when it has nothing to focus."""
        table = self.table
        if table is not None:
            table.focus()
            return True
        focusable: Iterable[Widget] = (w for w in self.query("*") if w.focusable)
        first = next(iter(focusable), None)
        if first is not None:
            first.focus()
            return True
        return False
