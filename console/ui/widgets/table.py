"""A DataTable for live lists: rows replaced wholesale, cursor kept, filterable.

Panels hand over the complete list on every snapshot; the table updates the
cells in place when the set of rows is unchanged (the common case for a
refresh), and rebuilds otherwise while keeping the cursor on the same row key.

``DataTable`` forgets every rendered cell whenever any cell changes (its
render caches are keyed by an update counter). A live table changes a few
cells a second, so it re-rendered all of them each time: a third of the
console's idle CPU (docs/PERFORMANCE.md). ``ListTable`` keeps rendered cells
by what they show instead (text, styles, position, width, cursor), so only
the cells that changed are rendered again.

A :class:`LazyRow` builds its cells only when the table shows it: a live
table of 50 containers with 6 rows on screen builds 6 rows a tick, not 50
(issue 15). Its cells are put in place when it scrolls into view.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, cast

from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.cache import LRUCache
from textual.color import Color
from textual.css.styles import RenderStyles
from textual.reactive import var
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey, RowKey

__all__ = ["LazyRow", "ListTable", "Row"]


@dataclass(frozen=True)
class Row:
    """One table row: a stable key, the rendered cells, the text the filter sees."""

    key: str
    cells: tuple[Text, ...]
    search: str


@dataclass(frozen=True)
class LazyRow:
    """A row whose cells are built (once) when the table first needs them."""

    key: str
    build: Callable[[], tuple[Text, ...]]
    search: str

    @cached_property
    def cells(self) -> tuple[Text, ...]:
        return self.build()


AnyRow = Row | LazyRow


class ListTable(DataTable[Text]):
    """Row-cursor DataTable with ``set_rows`` and a case-insensitive filter."""

    BINDINGS = [
        Binding("home", "scroll_top", "Top", show=False),
        Binding("end", "scroll_bottom", "Bottom", show=False),
    ]

    filter_text: var[str] = var("", init=False)
    """Only rows whose search text contains this (case-insensitive) are shown."""

    def __init__(
        self,
        columns: Sequence[tuple[str, str]],
        *,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        """``columns``: (key, label) pairs; a label ending in ``>`` is right-aligned."""
        super().__init__(
            id=id,
            classes=classes,
            cursor_type="row",
            zebra_stripes=False,
            show_cursor=True,
        )
        self._column_spec = list(columns)
        self._rows: list[AnyRow] = []
        self._shown: list[str] = []
        self._behind: dict[str, LazyRow] = {}
        """Lazy rows off screen whose newest cells are not in the table yet."""
        self._cells: LRUCache[tuple[Any, ...], Any] = LRUCache(4096)
        """Rendered cells by what they show (see the module docstring)."""

    def on_focus(self) -> None:
        self.show_cursor = True

    def on_blur(self) -> None:
        # The cursor of a list nobody is looking at would read as a highlight.
        self.show_cursor = False

    def on_mount(self) -> None:
        self.show_cursor = self.has_focus
        for key, label in self._column_spec:
            text = Text(label.rstrip(">"), justify="right" if label.endswith(">") else "left")
            self.add_column(text, key=key)

    # --- rendering: cells cached by content -------------------------------

    def _render_cell(
        self,
        row_index: int,
        column_index: int,
        base_style: Style,
        width: int,
        cursor: bool = False,
        hover: bool = False,
    ) -> Any:
        if row_index < 0 or column_index < 0:  # header and labels: rare, as DataTable does
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        row_key = self._row_locations.get_key(row_index)
        column_key = self._column_locations.get_key(column_index)
        if row_key is None or column_key is None:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        cell = self._data.get(row_key, {}).get(column_key)
        if not isinstance(cell, Text):
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        key = (
            row_index,
            column_index,
            base_style,
            width,
            cursor,
            hover,
            self._show_hover_cursor,
            self.show_cursor,
            self._pseudo_class_state,
            self.rows[row_key].height,
            cell.plain,
            tuple(cell.spans),
            cell.style,
            cell.justify,
        )
        lines = self._cells.get(key)
        if lines is None:
            lines = super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
            self._cells[key] = lines
        return lines

    def _clear_caches(self) -> None:
        super()._clear_caches()
        self._cells.clear()

    def notify_style_update(self) -> None:
        self._cells.clear()
        self._styles_of = None
        super().notify_style_update()

    # --- the table's own style, once per style change -----------------------
    #
    # DataTable asks for ``rich_style`` (every ancestor's styles blended) on
    # every line it renders and for ``background_colors`` (the same walk) on
    # every row: two thirds of a changed row's cost, for a value that moves
    # only when styles do (a theme, a pseudo-class). Both are kept until the
    # next ``notify_style_update``, which Textual sends to every node whose
    # styles it applies again, or a change of the table's pseudo-classes
    # (focus, hover) or of its own styles' cache key. Nothing in the
    # console's CSS gives an ancestor of a table a background that changes
    # on its own (app.tcss): a theme changes the table's rules too.

    _styles_of: tuple[Any, Style, tuple[Color, Color], dict[Any, Any]] | None = None

    def _kept(self) -> tuple[Any, Style, tuple[Color, Color], dict[Any, Any]]:
        state = (self.get_pseudo_class_state(), self.styles._cache_key)
        kept = self._styles_of
        if kept is None or kept[0] != state:
            kept = (state, super().rich_style, super().background_colors, {})
            self._styles_of = kept
        return kept

    def _own_styles(self) -> tuple[Style, tuple[Color, Color]]:
        kept = self._kept()
        return kept[1], kept[2]

    def get_component_styles(self, *names: str) -> RenderStyles:
        """A component's styles (``datatable--header``...), kept like the
        table's own: DataTable builds and merges them again for every row
        it renders, and their ``rich_style`` walks every ancestor."""
        components = self._kept()[3]
        # a component's rules change apart from the table's (the stylesheet
        # applies them to its own node): their cache keys are part of ours
        key = (names, tuple(self._component_styles[name]._cache_key for name in names))
        styles = components.get(key)
        if styles is None:
            styles = components[key] = _KeptStyles.of(super().get_component_styles(*names))
        return cast(RenderStyles, styles)

    @property
    def rich_style(self) -> Style:
        return self._own_styles()[0]

    @property
    def background_colors(self) -> tuple[Color, Color]:
        return self._own_styles()[1]

    @property
    def row_count_total(self) -> int:
        """Rows before filtering."""
        return len(self._rows)

    @property
    def shown_keys(self) -> list[str]:
        """Keys of the rows currently visible, in order."""
        return list(self._shown)

    @property
    def cursor_key(self) -> str | None:
        """Key of the row under the cursor, if any."""
        if not self._shown or not (0 <= self.cursor_row < len(self._shown)):
            return None
        return self._shown[self.cursor_row]

    def set_rows(self, rows: Sequence[AnyRow]) -> None:
        """Show ``rows``; a key given twice keeps its first row (a snapshot
        taken mid-change must never take the table, and the console, down)."""
        first: dict[str, AnyRow] = {}
        for row in rows:
            first.setdefault(row.key, row)
        self._rows = list(first.values())
        self._apply()

    def watch_filter_text(self) -> None:
        self._apply()

    def _visible(self) -> list[AnyRow]:
        needle = self.filter_text.strip().lower()
        if not needle:
            return self._rows
        return [row for row in self._rows if needle in row.search.lower()]

    def _apply(self) -> None:
        if not self.is_mounted:
            return
        visible = self._visible()
        keys = [row.key for row in visible]
        column_keys = [key for key, _ in self._column_spec]
        if keys == self._shown:
            self._update_rows(visible, column_keys)
            return
        previous = self.cursor_key
        previous_index = self.cursor_row
        # before clear(): it resets the scroll, whose watcher catches lazy
        # rows up, and the rows behind are of the old list
        self._behind.clear()
        self._shown = []
        self.clear()
        for row in visible:
            self.add_row(*row.cells, key=row.key)
        self._shown = keys
        if not keys:
            return
        index = (
            keys.index(previous) if previous in keys else min(max(previous_index, 0), len(keys) - 1)
        )
        self.move_cursor(row=index, animate=False, scroll=True)

    def _on_screen(self) -> range:
        """Indexes of the rows on screen (rows are one line high), one more
        each side."""
        first = int(self.scroll_y)
        return range(max(0, first - 1), first + self.size.height + 1)

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        self._catch_up()

    def on_resize(self) -> None:
        self._catch_up()

    def _catch_up(self) -> None:
        """Put in place the newest cells of lazy rows that came on screen."""
        if not self._behind or not self.is_mounted:
            return
        window = self._on_screen()
        index_of = {key: i for i, key in enumerate(self._shown)}
        due = [row for key, row in self._behind.items() if index_of.get(key, -1) in window]
        if due:
            for row in due:
                del self._behind[row.key]
            self._update_rows(due, [key for key, _ in self._column_spec], everywhere=True)

    def _update_rows(
        self,
        visible: Sequence[AnyRow],
        column_keys: Sequence[str],
        *,
        everywhere: bool = False,
    ) -> None:
        """Put the changed cells of an unchanged list of rows in place and
        repaint only the rows that changed, and of those only the ones on
        screen. ``DataTable.update_cell`` repaints the whole table once per
        cell (a live table changes most rows every second). Lazy rows off
        screen are kept for when they come on screen, not built."""
        changed: list[RowKey] = []
        widened = False
        window = self._on_screen()
        for position, row in enumerate(visible):
            if isinstance(row, LazyRow) and not everywhere and position not in window:
                self._behind[row.key] = row
                continue
            self._behind.pop(row.key, None)
            row_key = RowKey(row.key)
            data = self._data.get(row_key)
            if data is None:
                continue  # not a row of the table (any more): nothing to put in place
            row_changed = False
            for column_key, cell in zip(column_keys, row.cells, strict=False):
                key = ColumnKey(column_key)
                shown = data.get(key)
                if _same_cell(shown, cell):
                    continue
                row_changed = True
                # a wider value widens its column (else it would be cut)
                column = self.columns[key]
                if column.auto_width and cell.cell_len > column.content_width:
                    self.update_cell(row_key, key, cell, update_width=True)
                    widened = True
                else:
                    data[key] = cell
            if row_changed:
                changed.append(row_key)
        if not changed:
            return
        self._update_count += 1  # DataTable's own row and line caches go
        if widened:
            self.refresh()
            return
        for row_key in changed:
            index = self._row_locations.get(row_key)
            if index is not None:
                self.refresh_row(index)


class _KeptStyles(RenderStyles):
    """A component's styles whose ``rich_style`` is worked out once."""

    _rich: Style | None = None

    @classmethod
    def of(cls, styles: RenderStyles) -> _KeptStyles:
        assert styles.node is not None  # a component's styles have their node
        return cls(styles.node, styles.base, styles.inline)

    @property
    def rich_style(self) -> Style:
        if self._rich is None:
            self._rich = super().rich_style
        return self._rich


def _same_cell(shown: Any, cell: Text) -> bool:
    """True when ``shown`` looks exactly like ``cell``: text, spans and style
    (``Text.__eq__`` leaves the base style out: a level colour changing alone
    would not be drawn)."""
    return (
        isinstance(shown, Text)
        and shown.plain == cell.plain
        and shown.style == cell.style
        and shown.spans == cell.spans
        and shown.justify == cell.justify
    )
