"""market-sim speaks the formats our parsers read, with plausible, stable prices."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from platform_services.providers import sim
from platform_services.providers.clients import (
    SymbolNotFound,
    parse_alpha_vantage_quote,
    parse_finnhub_quote,
    parse_newsapi_everything,
    parse_polygon_prev,
)

NOW = datetime(2026, 5, 6, 14, 30, 15, tzinfo=UTC)


def test_universe_is_about_fifty_real_tickers() -> None:
    assert 45 <= len(sim.UNIVERSE) <= 60
    assert {"AAPL", "MSFT", "GOOGL", "AMZN", "NVDA", "BRK.B"} <= set(sim.UNIVERSE)


def test_each_format_parses_and_agrees_on_the_price() -> None:
    av = parse_alpha_vantage_quote("AAPL", 200, sim.alpha_vantage("AAPL", NOW))
    fh = parse_finnhub_quote("AAPL", 200, sim.finnhub("AAPL", NOW))
    pg = parse_polygon_prev("AAPL", 200, sim.polygon_prev("AAPL", NOW))
    assert av.price == pytest.approx(fh.price, abs=1e-3)
    assert av.previous_close == pytest.approx(fh.previous_close, abs=1e-3)
    # Polygon's "prev" bar closes at the previous close of the others.
    assert pg.price == pytest.approx(fh.previous_close, abs=1e-3)
    assert fh.low <= fh.price <= fh.high


def test_unknown_symbols_get_each_providers_not_found_shape() -> None:
    with pytest.raises(SymbolNotFound):
        parse_alpha_vantage_quote("ZZZZ", 200, sim.alpha_vantage("ZZZZ", NOW))
    with pytest.raises(SymbolNotFound):
        parse_finnhub_quote("ZZZZ", 200, sim.finnhub("ZZZZ", NOW))
    with pytest.raises(SymbolNotFound):
        parse_polygon_prev("ZZZZ", 200, sim.polygon_prev("ZZZZ", NOW))


def test_prices_are_deterministic_and_plausible() -> None:
    a = sim.PriceModel().snapshot("MSFT", NOW)
    b = sim.PriceModel().snapshot("MSFT", NOW)
    assert a == b
    base = sim.UNIVERSE["MSFT"][1]
    for days in (0, 365, 3 * 365):
        price = sim.PriceModel().snapshot("MSFT", NOW + timedelta(days=days))["price"]
        assert base / 2 < price < base * 2
    later = sim.PriceModel().snapshot("MSFT", NOW + timedelta(minutes=7))
    assert later["price"] != a["price"]  # it moves within the day


def test_news_parse() -> None:
    articles = parse_newsapi_everything(200, sim.newsapi_everything("AAPL", 5, NOW))
    assert 1 <= len(articles) <= 5
    assert all("Apple" in a.title or "AAPL" in a.title for a in articles)


def test_sim_quota_enforcement_counts_per_window() -> None:
    quotas = sim.Quotas(enforce=True)
    t = NOW.timestamp()
    admitted = [quotas.admit("polygon", t) for _ in range(7)]
    assert admitted == [True] * 5 + [False] * 2
    assert quotas.admit("polygon", t + 60)  # next minute
