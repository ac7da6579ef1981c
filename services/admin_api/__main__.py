"""`python -m services.admin_api`: serve the admin API with uvicorn (which handles SIGTERM:
it stops accepting, finishes requests in flight, then the lifespan disposes the pool)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI

from services.core.db import Database
from services.core.entry import parse_command_line
from services.core.settings import AppSettings, DatabaseSettings

from .app import create_app
from .settings import AdminApiSettings


def main() -> None:
    parse_command_line(
        "services.admin_api",
        "The staff admin API (FastAPI on uvicorn): users, tickets, products, bookings, "
        "payments, analytics, configuration, staff and keys; /docs shows the API.",
        [AppSettings, AdminApiSettings, DatabaseSettings],
    )
    app_settings = AppSettings()
    logging.basicConfig(
        level=app_settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    settings = AdminApiSettings()
    database = Database(DatabaseSettings())
    app = create_app(settings, database)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await database.dispose()

    app.router.lifespan_context = lifespan
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=app_settings.log_level.lower(),
        access_log=False,
        server_header=False,  # no software name and version for an attacker to look up
    )


if __name__ == "__main__":
    main()
