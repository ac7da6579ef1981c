"""The app factory: routers, problem+json errors, metrics, and the process's shared state."""

from __future__ import annotations

from fastapi import FastAPI

from services.core.db import Database

from . import docs, openapi, problems
from .api import (
    analytics,
    appointments,
    audit_log,
    backups,
    config,
    gdpr,
    health,
    payments,
    products,
    staff,
    tickets,
    users,
)
from .body_limit import BodyLimitMiddleware
from .metrics import HttpMetrics, MetricsMiddleware
from .ratelimit import RateLimiter
from .settings import AdminApiSettings

ROUTERS = (
    users.router,
    gdpr.router,
    tickets.router,
    products.router,
    appointments.router,
    payments.router,
    analytics.router,
    audit_log.router,
    config.router,
    staff.router,
    backups.router,
    health.router,
)


def create_app(settings: AdminApiSettings, database: Database) -> FastAPI:
    """The admin API over `database`, which the caller owns (opens and disposes)."""
    app = FastAPI(
        title="botstack admin API",
        version="1.0.0",
        description="Staff API of the bot stack. Authenticate with `Authorization: Bearer <key>`.",
        docs_url=None,  # docs.install serves it without a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.database = database
    app.state.limiter = RateLimiter(settings.rate_limit_per_minute, settings.rate_burst)
    app.state.failed_auth = RateLimiter(settings.failed_auth_per_minute, settings.failed_auth_burst)
    for router in ROUTERS:
        app.include_router(router)
    problems.install(app)
    docs.install(app)
    openapi.install(app)
    app.add_middleware(MetricsMiddleware, metrics=HttpMetrics(database.metrics.registry))
    # Outermost: an oversized body is refused before anything else reads it.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    return app
