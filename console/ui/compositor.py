"""A compositor that renders a frame's dirty regions apart, line by line.

Textual's compositor paints a partial frame by cropping the screen to the
bounding box of every dirty region and asking each widget that overlaps that
box for **all** its lines (only the dirty lines are then written out). On the
dashboard a frame's dirty regions are far apart: the clock at the top right,
a quota countdown half-way down the right column, a few rows of the stats
table at the left. Their bounding box covers most of the screen, so every
second the compositor had every panel, the screen itself and their
containers render (mostly from their line caches, but line by line) dozens
of lines nobody would see change: 30 % of the idle console's main thread by
the profile (docs/PERFORMANCE.md, "Third pass").

:class:`RegionCompositor` asks, for each dirty region, only the widgets that
overlap it, and only for the lines of that region. What reaches the terminal
is the same: the same spans, each cut of a line filled by the topmost widget
there (a cut is taken from the region it overlaps, where that widget is
always among those asked). Full frames (resize, layout) are Textual's own.
"""

from __future__ import annotations

from collections.abc import Iterable

from textual._compositor import ChopsUpdate, Compositor
from textual.geometry import Region
from textual.strip import Strip

__all__ = ["RegionCompositor", "merge_rows"]


def merge_rows(regions: Iterable[Region]) -> list[Region]:
    """Regions with the same columns that touch or overlap vertically, joined
    (the rows of one table repainted apart become one region)."""
    out: list[Region] = []
    for region in sorted(regions, key=lambda r: (r.x, r.width, r.y)):
        if out:
            last = out[-1]
            if last.x == region.x and last.width == region.width and region.y <= last.bottom:
                bottom = max(last.bottom, region.bottom)
                out[-1] = Region(last.x, last.y, last.width, bottom - last.y)
                continue
        out.append(region)
    return out


class RegionCompositor(Compositor):
    """:class:`~textual._compositor.Compositor` whose partial frames render
    each dirty region's lines only, not their bounding box."""

    def render_partial_update(self) -> ChopsUpdate | None:
        screen_region = self.size.region
        dirty = self._dirty_regions.copy()
        self._dirty_regions.clear()
        regions = merge_rows(
            clipped for region in dirty if (clipped := region.intersection(screen_region))
        )
        if not regions:
            return None
        spans = list(self._regions_to_spans(regions))
        cuts = self.cuts
        chops: list[dict[int, Strip | None]] = [dict.fromkeys(cut_set[:-1]) for cut_set in cuts]
        visible = list(self.visible_widgets.items())
        for crop in regions:
            left, top, right, bottom = crop.x, crop.y, crop.right, crop.bottom
            # front to back, as Textual paints: the first strip of a cut wins
            for widget, (region, clip) in visible:
                shown = region.intersection(clip)
                y1, y2 = max(shown.y, top), min(shown.bottom, bottom)
                # one column past the region too: ChopsUpdate also writes the
                # cut that starts where a span ends (``x > x2`` skips, not ``>=``)
                if y2 <= y1 or shown.x > right or shown.right <= left:
                    continue
                strips = widget.render_lines(
                    Region(shown.x - region.x, y1 - region.y, shown.width, y2 - y1)
                )
                first_cut, last_cut = shown.column_span
                for y, strip in zip(range(y1, y2), strips, strict=False):
                    line = chops[y]
                    final_cuts = [cut for cut in cuts[y] if last_cut >= cut >= first_cut]
                    pieces = strip.divide([cut - shown.x for cut in final_cuts[1:]])
                    for cut, piece in zip(final_cuts, pieces, strict=False):
                        # only the cuts this region overlaps (and the one at its
                        # end): elsewhere on the line a widget not asked may be on top
                        if (
                            cut <= right
                            and cut + piece.cell_length > left
                            and line.get(cut) is None
                        ):
                            line[cut] = piece
        chop_ends = [cut_set[1:] for cut_set in cuts]
        return ChopsUpdate(chops, spans, chop_ends)
