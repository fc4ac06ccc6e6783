"""A ``Static`` for live data that costs nothing when nothing changed.

``Static.update`` repaints and asks for a layout pass of the whole screen on
every call, even when the text is the same or cannot change the widget's
size. On a dashboard redrawn from a 1 Hz clock that was most of the
console's idle CPU (docs/PERFORMANCE.md). ``LiveText.update``:

- does nothing when the new content is the same as what is shown (same text
  and same styles);
- repaints without a layout pass when the new content cannot change the
  widget's size: its width does not follow the content, and its height
  either is fixed or, when it follows the content, comes out the same.
"""

from __future__ import annotations

from typing import Any, cast

from textual.content import Content
from textual.visual import VisualType, visualize
from textual.widgets import Static

__all__ = ["LiveText", "same_content"]


def same_content(a: VisualType | None, b: VisualType | None) -> bool:
    """True when ``a`` and ``b`` would render alike (text and styles)."""
    if isinstance(a, Content) and isinstance(b, Content):
        return a.is_same(b)
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    return a is b


class LiveText(Static):
    """``Static`` whose ``update`` skips no-op updates and needless layouts."""

    def __init__(self, content: VisualType = "", **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self._shown: VisualType | None = content

    def update(self, content: VisualType = "", *, layout: bool | None = None) -> None:
        """Show ``content``; ``layout=None`` decides whether a layout pass is needed."""
        if same_content(content, self._shown):
            return
        previous, self._shown = self._shown, content
        if layout is None:
            layout = self._size_may_change(previous, content)
        super().update(content, layout=layout)

    def _size_may_change(self, previous: VisualType | None, content: VisualType) -> bool:
        if not self.is_mounted or previous is None:
            return True
        styles = self.styles
        width, height = styles.width, styles.height
        if width is not None and width.is_auto:
            return True
        if height is not None and not height.is_auto:
            return False
        size = self.content_region.width
        if size <= 0:
            return True
        try:
            markup, rules = self._render_markup, cast(Any, styles)
            before = visualize(self, previous, markup=markup).get_height(rules, size)
            after = visualize(self, content, markup=markup).get_height(rules, size)
        except Exception:  # a visual that cannot tell its height: be safe
            return True
        return bool(before != after)
