"""What happens before the first frame (issue 15: first paint), counted.

* plotext's import thread starts once the monitor is built, not beside it.
* The first frame does not restyle the dashboard's columns: ``-active`` and
  ``-holds-active`` only match in compact mode (app.tcss), so the grid sets
  them without a restyle of every widget under ``#columns``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import pytest
from textual.css.stylesheet import Stylesheet
from textual.dom import DOMNode

from console.core.config import Settings
from tests.ui.fakes import make_app, monitor_factory


@pytest.mark.parametrize(("size", "compact"), [((160, 48), False), ((80, 24), True)])
async def test_the_first_frame_does_not_restyle_the_columns_in_the_grid(
    size: tuple[int, int], compact: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    roots: list[str] = []
    update_nodes = Stylesheet.update_nodes

    def watched(self: Stylesheet, nodes: Iterable[DOMNode], animate: bool = False) -> None:
        nodes = list(nodes)
        if nodes:
            roots.append(nodes[0].id or type(nodes[0]).__name__)
        update_nodes(self, nodes, animate)

    monkeypatch.setattr(Stylesheet, "update_nodes", watched)
    app = make_app(None)  # no data: the first frame, panels waiting
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        assert app.dashboard.compact is compact
        whole = [r for r in roots if r in ("dashboard", "columns", "left", "right")]
        if compact:
            # the change to compact restyles the dashboard once, with the
            # active panel's classes already set
            assert whole == ["dashboard"], roots
        else:
            assert whole == [], roots


async def test_plotext_is_imported_after_the_monitor_is_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """plotext's import (a thread, ~0.2 s of CPU) starts once the monitor is
    built, not beside it: both at once delayed the sources' start."""
    import gc

    import console.ui.app as app_module
    from console.ui.widgets import chart

    order: list[str] = []
    fake = monitor_factory("normal")

    def factory(settings: Settings, sink: Any) -> Any:
        time.sleep(1.5)  # longer than the first frame: a thread started beside it runs meanwhile
        order.append("monitor built")
        return fake(settings, sink)

    monkeypatch.setattr(gc, "freeze", lambda: None)  # not the test process's heap
    monkeypatch.setattr(chart, "_preloading", type(chart._preloading)())
    monkeypatch.setattr(app_module, "preload_plotext", lambda: order.append("plotext"))
    app = make_app("normal")
    app._monitor_factory = factory
    app._preload = True
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
    assert order == ["monitor built", "plotext"], order
