"""p95 from Prometheus histogram bucket deltas, as histogram_quantile does."""

from __future__ import annotations

import math

import pytest

from console.core.sources.health import (
    bucket_deltas,
    histogram_quantile,
    parse_histogram,
    sum_buckets,
)

SCRAPE = """\
# HELP http_request_duration_seconds Request duration
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{le="0.1",method="GET",path="/api/health"} 90.0
http_request_duration_seconds_bucket{le="0.5",method="GET",path="/api/health"} 95.0
http_request_duration_seconds_bucket{le="1.0",method="GET",path="/api/health"} 98.0
http_request_duration_seconds_bucket{le="+Inf",method="GET",path="/api/health"} 100.0
http_request_duration_seconds_count{method="GET",path="/api/health"} 100.0
http_request_duration_seconds_sum{method="GET",path="/api/health"} 7.5
http_request_duration_seconds_bucket{method="GET",path="/api/stocks",le="0.1"} 0.0
http_request_duration_seconds_bucket{method="GET",path="/api/stocks",le="0.5"} 2.0
http_request_duration_seconds_bucket{method="GET",path="/api/stocks",le="1.0"} 5.0
http_request_duration_seconds_bucket{method="GET",path="/api/stocks",le="+Inf"} 10.0
http_request_duration_seconds_created{method="GET",path="/api/stocks"} 1.7e9
other_histogram_bucket{le="+Inf"} 1e6
"""


def test_parse_sums_over_labels() -> None:
    buckets = parse_histogram(SCRAPE)
    assert buckets == {0.1: 90.0, 0.5: 97.0, 1.0: 103.0, math.inf: 110.0}


def test_quantile_interpolates_inside_the_bucket() -> None:
    buckets = {0.1: 50.0, 0.5: 90.0, 1.0: 100.0, math.inf: 100.0}
    # rank 95 lies in (0.5, 1.0]: 0.5 + 0.5 * (95 - 90) / 10
    assert histogram_quantile(0.95, buckets) == pytest.approx(0.75)
    # rank 25 in the first bucket: 0 + 0.1 * 25/50
    assert histogram_quantile(0.25, buckets) == pytest.approx(0.05)


def test_quantile_in_the_inf_bucket_is_the_highest_bound() -> None:
    buckets = {0.1: 10.0, 2.0: 50.0, math.inf: 100.0}
    assert histogram_quantile(0.95, buckets) == 2.0


def test_quantile_without_observations() -> None:
    assert histogram_quantile(0.95, {0.1: 0.0, math.inf: 0.0}) is None
    assert histogram_quantile(0.95, {}) is None
    assert histogram_quantile(0.95, {0.1: 5.0}) is None  # no +Inf bucket


def test_deltas_between_scrapes() -> None:
    before = {0.1: 90.0, 0.5: 95.0, math.inf: 100.0}
    after = {0.1: 90.0, 0.5: 95.0, 2.5: 105.0, math.inf: 130.0}
    assert bucket_deltas(before, after) == {0.1: 0.0, 0.5: 0.0, 2.5: 105.0, math.inf: 30.0}


def test_slow_requests_since_last_scrape_give_a_high_p95() -> None:
    # 1000 fast requests earlier, then 20 requests of about 3 s
    before = {0.1: 1000.0, 1.0: 1000.0, 2.5: 1000.0, 5.0: 1000.0, math.inf: 1000.0}
    after = {0.1: 1000.0, 1.0: 1000.0, 2.5: 1000.0, 5.0: 1020.0, math.inf: 1020.0}
    p95 = histogram_quantile(0.95, bucket_deltas(before, after))
    assert p95 is not None and 2.5 < p95 <= 5.0
    # the cumulative counters alone would hide them
    assert histogram_quantile(0.95, after) == pytest.approx(0.1 * 0.95 * 1020 / 1000)


def test_counter_reset_uses_the_new_counts() -> None:
    before = {0.1: 500.0, math.inf: 600.0}
    after = {0.1: 3.0, math.inf: 4.0}  # the colour restarted
    assert bucket_deltas(before, after) == after


def test_colours_add_up() -> None:
    blue = {0.1: 1.0, math.inf: 2.0}
    green = {0.1: 3.0, math.inf: 3.0}
    assert sum_buckets([blue, green]) == {0.1: 4.0, math.inf: 5.0}


def test_a_colour_is_down_only_when_nginx_could_not_reach_it() -> None:
    from console.core.models import EndpointResult
    from console.core.sources.health import unreachable

    def result(status: int | None, version: str | None = None) -> EndpointResult:
        return EndpointResult(path="/api/health", target="green", status=status, version=version)

    assert unreachable(result(None))  # nothing answered
    assert unreachable(result(502)) and unreachable(result(504))  # nginx's own answer
    assert not unreachable(result(503, "v1.2.3"))  # the backend itself: unhealthy, not down
    assert not unreachable(result(200, "v1.2.3"))
    assert not unreachable(result(500))


def test_a_label_value_with_a_brace_keeps_its_series() -> None:
    """A quoted label value may hold ``}`` and ``,`` (the text format allows
    it): the series still counts (a regex over ``{...}`` dropped it)."""
    scrape = (
        "# TYPE http_request_duration_seconds histogram\n"
        'http_request_duration_seconds_bucket{path="/api/{id},x",le="0.1"} 3.0\n'
        'http_request_duration_seconds_bucket{path="/api/{id},x",le="+Inf"} 4.0\n'
        'http_request_duration_seconds_bucket{path="/plain",le="0.1"} 1.0\n'
        'http_request_duration_seconds_bucket{path="/plain",le="+Inf"} 1.0\n'
    )
    assert parse_histogram(scrape) == {0.1: 4.0, math.inf: 5.0}
