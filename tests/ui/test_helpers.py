"""Pure helpers of the UI: formatting, sparklines, gauges, bar charts, chart scale."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from console.ui.format import NONE, fmt_age, fmt_bytes, fmt_count, fmt_duration, fmt_time, shorten
from console.ui.panels.containers import short_port
from console.ui.panels.cost import bar_rows
from console.ui.panels.health import short_error, short_path
from console.ui.panels.quotas import window_name
from console.ui.screens.deploy import check_version
from console.ui.widgets.chart import ChartData, ChartSeries, nice_top, render_chart
from console.ui.widgets.sparkline import BLOCKS, gauge, sparkline

NOW = datetime(2025, 3, 14, 14, 2, 11, tzinfo=UTC)


@pytest.mark.parametrize(
    ("seconds", "two", "one"),
    [
        (None, NONE, NONE),
        (0, "0s", "0s"),
        (42, "42s", "42s"),
        (192, "3m12s", "3m"),
        (7500, "2h05m", "2h"),
        (273600, "3d04h", "3d"),
        (-5, "0s", "0s"),
    ],
)
def test_fmt_duration(seconds: float | None, two: str, one: str) -> None:
    assert fmt_duration(seconds) == two
    assert fmt_duration(seconds, parts=1) == one


def test_sizes_counts_ages_times() -> None:
    assert fmt_bytes(412 * 2**20) == "412M"
    assert fmt_bytes(int(1.2 * 2**30)) == "1.2G"
    assert fmt_bytes(900) == "900B"
    assert fmt_count(1234) == "1.2k" and fmt_count(12) == "12" and fmt_count(3_400_000) == "3.4M"
    assert fmt_age(NOW, NOW - timedelta(seconds=42)) == "42s"
    assert fmt_age(NOW, None) == NONE
    assert fmt_time(NOW - timedelta(minutes=3), NOW) == "13:59:11"
    assert fmt_time(NOW - timedelta(days=2), NOW) == "03-12 14:02"
    assert shorten("SELECT  *\n  FROM prices", 12) == "SELECT * FR…"


def test_sparkline_and_gauge() -> None:
    assert sparkline([], 4) == "    "
    assert sparkline([0, 50, 100], 3, lo=0, hi=100) == BLOCKS[0] + BLOCKS[4] + BLOCKS[-1]
    assert sparkline([5, 5, 5], 5) == "  " + BLOCKS[0] * 3  # flat, padded left
    assert len(sparkline(list(range(100)), 10)) == 10
    assert gauge(0, 10) == "░" * 10
    assert gauge(1, 10) == "█" * 10
    assert gauge(0.5, 4) == "██░░"
    assert gauge(2.0, 4) == "████"  # clamped


def test_bar_rows_stack_from_the_bottom() -> None:
    rows = bar_rows([0.0, 1.0, 2.0], 2, top=2.0)
    assert rows == ["  █", " ██"]
    assert bar_rows([], 3) == []


def test_chart_scale_and_fallback() -> None:
    assert nice_top(23.5) == 50
    assert nice_top(86) == 100
    assert nice_top(116) == 200
    assert nice_top(0) == 5
    text = render_chart(60, 8, ChartData(series=(ChartSeries("cpu", (1.0, 2.0, 3.0)),)))
    assert text.plain.count("\n") >= 5
    assert render_chart(5, 3, ChartData()).plain == ""


def test_cell_shorteners() -> None:
    assert short_port("127.0.0.1:80->80/tcp") == ":80→80"
    assert short_port("10.0.0.2:5432->5432/tcp") == "10.0.0.2:5432→5432"
    assert short_path("/api/health/database") == "/database"
    assert short_path("/api/health") == "/api/health"
    assert short_error("[Errno 111] Connection refused") == "refused"
    assert short_error("ReadTimeout: timed out") == "timeout"
    assert window_name(86400) == "day" and window_name(60) == "min" and window_name(300) == "5m"


@pytest.mark.parametrize("good", ["v1", "v1.2", "v1.2.3", "v1.3.0-rc.1"])
def test_versions_accepted(good: str) -> None:
    assert check_version(good) is None


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "1.2.3",
        "v1..2",
        "latest",
        "v1.2.3;reboot",
        "v\uff11.\uff12",
        "v" + "9" * 80,
        "v1\x1b[2J",
    ],
)
def test_versions_refused_with_a_reason(bad: str) -> None:
    reason = check_version(bad)
    assert reason is not None and ("malformed" in reason or "required" in reason)


async def test_a_key_given_twice_keeps_its_first_row_and_does_not_crash() -> None:
    """A snapshot taken while compose recreates a container may name one
    container twice; the table must not raise DuplicateKey (it took the TUI
    down in a run)."""
    from rich.text import Text
    from textual.app import App, ComposeResult

    from console.ui.widgets.table import ListTable, Row

    class One(App[None]):
        def compose(self) -> ComposeResult:
            yield ListTable([("name", "name")])

    def row(key: str, text: str) -> Row:
        return Row(key=key, cells=(Text(text),), search=text)

    app = One()
    async with app.run_test() as pilot:
        table = app.query_one(ListTable)
        table.set_rows([row("a", "first a"), row("b", "b"), row("a", "second a")])
        await pilot.pause()
        assert table.row_count == 2
        assert [str(table.get_row_at(i)[0]) for i in range(2)] == ["first a", "b"]


def test_a_renamed_container_is_inspected_again() -> None:
    """Compose renames the old container to <id>_<name> before it creates the
    new one: the cache of inspected containers must not keep the old name."""
    from console.core.sources.docker.containers import ContainersSource

    item = {"Id": "1", "State": "running", "Status": "Up 1 minute", "Image": "i", "Created": 1}
    before = ContainersSource._list_key({**item, "Names": ["/sdtest_backend_green_prod"]})
    after = ContainersSource._list_key({**item, "Names": ["/1abc_sdtest_backend_green_prod"]})
    assert before != after
