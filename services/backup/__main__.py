"""`python -m services.backup`: the backup service. Serves /metrics and /health on
BACKUP_SERVICE_HOST:PORT and runs the schedule (base backups, retention, drills). On SIGTERM
aiohttp stops serving and the scheduler is cancelled; a running pg_basebackup is stopped and its
partial directory never enters the catalogue."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import REGISTRY

from services.core.entry import parse_command_line
from services.core.settings import (
    AppSettings,
    BackupRoleSettings,
    DatabaseSettings,
)

from .app import create_app
from .context import create_context
from .metrics import JobMetrics
from .scheduler import Scheduler
from .settings import BackupServiceSettings


def main() -> None:
    parse_command_line(
        "services.backup",
        "The backup service: scheduled verified base backups, retention and restore drills, "
        "with /metrics and /health. Operators' commands: python -m services.backup.cli.",
        [AppSettings, BackupServiceSettings, BackupRoleSettings, DatabaseSettings],
    )
    app_settings = AppSettings()
    logging.basicConfig(
        level=app_settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    settings = BackupServiceSettings()
    context = create_context(settings, REGISTRY)
    app = create_app(context, REGISTRY)
    scheduler = Scheduler(context, JobMetrics(REGISTRY), REGISTRY)

    async def schedule(_: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(scheduler.run_forever())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await context.database.dispose()

    app.cleanup_ctx.append(schedule)
    # No access log: a scrape every few seconds would drown the backup events.
    web.run_app(app, host=settings.host, port=settings.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
