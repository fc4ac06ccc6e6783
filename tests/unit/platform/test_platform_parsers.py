"""Parsers of the providers' real response formats (providers/clients.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from platform_services.providers.clients import (
    ProviderAuthError,
    ProviderRateLimited,
    ProviderUnavailable,
    Quote,
    SymbolNotFound,
    parse_alpha_vantage_quote,
    parse_finnhub_quote,
    parse_newsapi_everything,
    parse_polygon_prev,
)

# Shapes as documented by each provider (values from their documentation examples).
AV_IBM = {
    "Global Quote": {
        "01. symbol": "IBM",
        "02. open": "187.9500",
        "03. high": "189.0000",
        "04. low": "186.2500",
        "05. price": "187.4300",
        "06. volume": "3284726",
        "07. latest trading day": "2024-06-07",
        "08. previous close": "188.2500",
        "09. change": "-0.8200",
        "10. change percent": "-0.4356%",
    }
}
FINNHUB_AAPL = {
    "c": 261.74,
    "d": 0.42,
    "dp": 0.1607,
    "h": 263.31,
    "l": 260.68,
    "o": 261.07,
    "pc": 261.32,
    "t": 1582641000,
}
FINNHUB_UNKNOWN = {"c": 0, "d": None, "dp": None, "h": 0, "l": 0, "o": 0, "pc": 0, "t": 0}
POLYGON_AAPL = {
    "adjusted": True,
    "queryCount": 1,
    "request_id": "6a7e466379af0a71039d60cc78e72282",
    "results": [
        {
            "T": "AAPL",
            "c": 115.97,
            "h": 117.59,
            "l": 114.13,
            "o": 115.55,
            "t": 1605042000000,
            "v": 131704427,
            "vw": 116.3058,
        }
    ],
    "resultsCount": 1,
    "status": "OK",
    "ticker": "AAPL",
}
POLYGON_UNKNOWN = {
    "ticker": "ZZZZ",
    "queryCount": 0,
    "resultsCount": 0,
    "adjusted": True,
    "status": "OK",
    "request_id": "x",
}


def test_alpha_vantage_global_quote() -> None:
    q = parse_alpha_vantage_quote("IBM", 200, AV_IBM)
    assert q == Quote(
        symbol="IBM",
        price=187.43,
        provider="alpha_vantage",
        as_of=datetime(2024, 6, 7, tzinfo=UTC),
        open=187.95,
        high=189.0,
        low=186.25,
        previous_close=188.25,
        change=-0.82,
        change_percent=-0.4356,
        volume=3284726,
    )


@pytest.mark.parametrize(
    ("status", "payload", "error"),
    [
        (200, {"Global Quote": {}}, SymbolNotFound),
        (
            200,
            {
                "Note": "Thank you for using Alpha Vantage! Our standard API call frequency is 5 calls per minute"
            },
            ProviderRateLimited,
        ),
        (
            200,
            {"Information": "Our standard API rate limit is 25 requests per day."},
            ProviderRateLimited,
        ),
        (200, {"Error Message": "the parameter apikey is invalid or missing."}, ProviderAuthError),
        (
            200,
            {"Error Message": "Invalid API call. Please retry or visit the documentation"},
            SymbolNotFound,
        ),
        (200, {"unexpected": 1}, ProviderUnavailable),
        (200, ["not", "an", "object"], ProviderUnavailable),
        (503, None, ProviderUnavailable),
    ],
)
def test_alpha_vantage_errors(status: int, payload: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_alpha_vantage_quote("IBM", status, payload)


def test_finnhub_quote() -> None:
    q = parse_finnhub_quote("AAPL", 200, FINNHUB_AAPL)
    assert q.price == 261.74
    assert q.previous_close == 261.32
    assert q.change_percent == pytest.approx(0.1607)
    assert q.as_of == datetime.fromtimestamp(1582641000, UTC)
    assert q.provider == "finnhub"


@pytest.mark.parametrize(
    ("status", "payload", "error"),
    [
        (200, FINNHUB_UNKNOWN, SymbolNotFound),
        (401, {"error": "Invalid API key"}, ProviderAuthError),
        (403, {"error": "You don't have access to this resource."}, ProviderAuthError),
        (
            429,
            {"error": "API limit reached. Please try again later. Remaining Limit: 0"},
            ProviderRateLimited,
        ),
        (500, {}, ProviderUnavailable),
    ],
)
def test_finnhub_errors(status: int, payload: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_finnhub_quote("AAPL", status, payload)


def test_polygon_previous_close() -> None:
    q = parse_polygon_prev("AAPL", 200, POLYGON_AAPL)
    assert q.price == 115.97
    assert q.open == 115.55
    assert q.volume == 131704427
    assert q.change == pytest.approx(0.42)
    assert q.as_of == datetime.fromtimestamp(1605042000, UTC)


@pytest.mark.parametrize(
    ("status", "payload", "error"),
    [
        (200, POLYGON_UNKNOWN, SymbolNotFound),
        (200, {**POLYGON_UNKNOWN, "results": []}, SymbolNotFound),
        (
            401,
            {"status": "ERROR", "request_id": "x", "error": "Unknown API Key"},
            ProviderAuthError,
        ),
        (
            429,
            {"status": "ERROR", "error": "You've exceeded the maximum requests per minute"},
            ProviderRateLimited,
        ),
        (200, {"status": "ERROR", "error": "boom"}, ProviderUnavailable),
    ],
)
def test_polygon_errors(status: int, payload: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_polygon_prev("AAPL", status, payload)


def test_newsapi_everything() -> None:
    payload = {
        "status": "ok",
        "totalResults": 2,
        "articles": [
            {
                "source": {"id": None, "name": "Wire"},
                "author": None,
                "title": "Apple ships a thing",
                "description": "More",
                "url": "https://example.com/a",
                "urlToImage": None,
                "publishedAt": "2024-06-07T12:30:00Z",
                "content": "...",
            },
            {"title": None, "url": "https://example.com/b", "publishedAt": "2024-06-07T12:30:00Z"},
        ],
    }
    articles = parse_newsapi_everything(200, payload)
    assert len(articles) == 1  # the untitled one is dropped
    assert articles[0].source == "Wire"
    assert articles[0].published_at == datetime(2024, 6, 7, 12, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "payload", "error"),
    [
        (429, {"status": "error", "code": "rateLimited", "message": "..."}, ProviderRateLimited),
        (401, {"status": "error", "code": "apiKeyInvalid", "message": "..."}, ProviderAuthError),
        (
            400,
            {"status": "error", "code": "parametersMissing", "message": "..."},
            ProviderUnavailable,
        ),
        (200, {"status": "ok"}, ProviderUnavailable),
    ],
)
def test_newsapi_errors(status: int, payload: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_newsapi_everything(status, payload)


def test_quote_json_round_trip() -> None:
    q = parse_alpha_vantage_quote("IBM", 200, AV_IBM)
    assert Quote.from_json(q.to_json()) == q
