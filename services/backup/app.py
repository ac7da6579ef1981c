"""The service's HTTP side: /metrics, /health/live, /health/ready (which also says whether an
offsite repository is configured)."""

from __future__ import annotations

import os

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from .context import Context
from .errors import BackupError
from .metrics import BackupCollector
from .offsite import offsite_health


def create_app(context: Context, registry: CollectorRegistry) -> web.Application:
    collector = BackupCollector(context.settings, context.live)
    registry.register(collector)

    async def metrics(_: web.Request) -> web.Response:
        await collector.refresh()
        return web.Response(
            body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def live(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def ready(_: web.Request) -> web.Response:
        """Ready when a backup could be taken now: the backup volume is writable, the WAL
        archive is there and writable, and the live server answers the backup role."""
        settings = context.settings
        problems = []
        try:
            if not os.access(settings.backup_dir, os.W_OK):
                problems.append(f"backup directory {settings.backup_dir} is not writable")
            if not settings.archive_dir.is_dir():
                problems.append(f"WAL archive {settings.archive_dir} does not exist")
            elif not os.access(settings.archive_dir, os.W_OK):
                # Retention removes old WAL from it; checked as the user the service runs as
                # (the one that runs PostgreSQL, never root, who could write anywhere).
                problems.append(f"WAL archive {settings.archive_dir} is not writable")
        except BackupError as error:
            problems.append(str(error))
        try:
            await context.live.archiver()
        except BackupError as error:
            problems.append(str(error))
        # No offsite copy (or a failing one) is a risk to show, not a reason to refuse backups.
        offsite = offsite_health(settings)
        if problems:
            return web.json_response(
                {"status": "unavailable", "problems": problems, "offsite": offsite}, status=503
            )
        return web.json_response({"status": "ok", "offsite": offsite})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/health/live", live)
    app.router.add_get("/health/ready", ready)
    return app
