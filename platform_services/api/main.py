"""The Investment Analysis Platform API (FastAPI).

Run: ``uvicorn platform_services.api.main:app --host 0.0.0.0 --port 8000``.

Endpoints (the runbook's interface):

==========================================  ==========================================
``GET /api/health``                         status, version, colour, uptime, checks
``GET /api/health/database|cache``          one store each; 503 when down
``GET /api/health/external-apis``           per provider: reachable, quota left
``GET /api/stocks/prices?symbols=AAPL,..``  cache → providers within quota → stored
``POST /api/auth/login``                    JWT for a user of the ``users`` table
``POST /api/cache/clear``                   admin: delete ``cache:*`` keys only
``GET /api/metrics/cost|api-usage|cache``   cost model, quotas, cache hit rate
``GET /api/ws/prices?symbols=AAPL,..``      WebSocket: snapshot, then each new quote
``GET /metrics``                            Prometheus text format
==========================================  ==========================================

Every response carries the security headers; API responses are ``no-store``;
CORS is off unless ``CORS_ORIGINS`` lists origins; request bodies are capped at
``MAX_BODY_BYTES`` (413). The schema is migrated by the deploy tooling
(``python3 -m alembic upgrade head``), never by the app; the app creates the
bootstrap users once the ``users`` table exists.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from platform_services.api import health, routes, stream
from platform_services.api.context import Platform
from platform_services.api.middleware import (
    BodySizeLimitMiddleware,
    DeadlineMiddleware,
    MetricsMiddleware,
    SecurityHeadersMiddleware,
)
from platform_services.settings import Settings, get_settings
from platform_services.telemetry import setup_logging


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        setup_logging(settings.log_level)
        platform = Platform(settings)
        app.state.platform = platform
        await platform.start()
        try:
            yield
        finally:
            await platform.stop()

    docs = settings.enable_docs
    app = FastAPI(
        title="Investment Analysis Platform API",
        version=settings.app_version,
        lifespan=lifespan,
        docs_url="/api/docs" if docs else None,
        redoc_url=None,
        # The OpenAPI document is always served (it describes every status code
        # each endpoint can answer); the Swagger UI only with ENABLE_DOCS.
        openapi_url="/openapi.json",
    )
    app.include_router(health.router)
    app.include_router(routes.router)
    app.include_router(stream.router)

    # Added innermost first: the last one added wraps all the others.
    app.add_middleware(DeadlineMiddleware, seconds=settings.request_deadline_s)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    origins = settings.cors_origin_list()
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
            allow_credentials=False,
            max_age=600,
        )
    app.add_middleware(MetricsMiddleware)
    app.add_middleware(SecurityHeadersMiddleware, docs_paths=("/api/docs",) if docs else ())
    return app


app = create_app()
