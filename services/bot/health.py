"""Liveness, readiness (the database through PgBouncer) and Prometheus metrics: an app of
their own, served on BOT_METRICS_HOST:PORT (loopback or the internal network), never on the
webhook's published port."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.core.db import Database
from services.core.errors import DatabaseUnavailable


async def plain_server_header(_: web.Request, response: web.StreamResponse) -> None:
    """No Server header naming aiohttp and its version (what an attacker would look up)."""
    response.headers["Server"] = "botstack"


def create_ops_app(database: Database) -> web.Application:
    app = web.Application()
    app.add_routes(_routes(database))
    app.on_response_prepare.append(plain_server_header)
    return app


def _routes(database: Database) -> list[web.RouteDef]:
    async def live(request: web.Request) -> web.Response:
        """The process answers; says nothing about the database."""
        return web.json_response({"status": "ok"})

    async def ready(request: web.Request) -> web.Response:
        try:
            await database.ping()
        except DatabaseUnavailable:
            # No detail: the reason is in the logs.
            return web.json_response({"status": "unavailable"}, status=503)
        return web.json_response({"status": "ok"})

    async def metrics(request: web.Request) -> web.Response:
        # The bot's metrics share the database layer's registry (the process default).
        body = generate_latest(database.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    return [
        web.get("/health/live", live),
        web.get("/health/ready", ready),
        web.get("/metrics", metrics),
    ]
