"""The service's schedule: a base backup when the newest one is older than the backup interval
(at once on an empty catalogue), retention after each backup, and a restore drill every drill
interval, and the database's maintenance (retention, ANALYZE, VACUUM: maintenance.py) when
each is due. A failed job is retried after RETRY_SECONDS, not on every tick. Every tick also
makes sure archive_timeout works on a freshly started server (LiveServer.arm_archive_timeout)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry

from .basebackup import prepare_directory, take_backup
from .catalogue import Catalogue
from .context import Context
from .drill import drill, load_last_drill
from .errors import BackupError
from .maintenance import JOBS, Maintenance, MaintenanceMetrics
from .metrics import JobMetrics
from .retention import apply_retention

log = logging.getLogger("services.backup")
TICK_SECONDS = 30.0
RETRY_SECONDS = 300.0


class Scheduler:
    def __init__(
        self,
        context: Context,
        metrics: JobMetrics,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.context = context
        self.metrics = metrics
        # Registered where the service's /metrics reads (a private registry in tests).
        self.maintenance = Maintenance(
            context.settings,
            context.database,
            MaintenanceMetrics(registry or CollectorRegistry()),
        )
        self.started = datetime.now(UTC)
        self._failed_at: dict[str, float] = {}

    def backup_due(self, now: datetime) -> bool:
        newest = Catalogue(self.context.settings.backup_dir).newest()
        interval = timedelta(seconds=self.context.settings.backup_interval_seconds)
        return newest is None or newest.finished_at + interval <= now

    def drill_due(self, now: datetime) -> bool:
        last = load_last_drill(self.context.settings)
        # The first drill waits one interval after start-up, so that every `make up` does not
        # start a scratch server.
        since = last.started_at if last else self.started
        return since + timedelta(seconds=self.context.settings.drill_interval_seconds) <= now

    async def run_forever(self) -> None:
        if not self.context.settings.configured:
            log.error(
                "no backup directory: set BACKUP_SERVICE_STATE_DIR (or BACKUP_SERVICE_DIR and "
                "BACKUP_SERVICE_WAL_ARCHIVE); nothing is scheduled until then"
            )
            return
        prepare_directory(self.context.settings.backup_dir, self.context.user)
        while True:
            await self.tick()
            await asyncio.sleep(TICK_SECONDS)

    async def tick(self) -> None:
        context = self.context
        try:
            await context.live.arm_archive_timeout()
        except BackupError as error:
            log.warning("archive_timeout check: %s", error)
        now = datetime.now(UTC)
        with context.exclusive(wait=False) as acquired:
            if not acquired:
                return  # an operator's command is running; look again next tick
            if self.backup_due(now) and await self._job("backup", self._backup_and_retention):
                return
            if self.drill_due(now) and await self._job("drill", self._drill):
                return
            for job in JOBS:
                if self.maintenance.due(job, now):
                    await self._job(job, lambda job=job: self._maintain(job))  # type: ignore[misc]

    async def _maintain(self, job: str) -> None:
        await self.maintenance.run(job)

    async def _backup_and_retention(self) -> None:
        context = self.context
        await take_backup(context.settings, context.live, context.runs, context.user)
        await apply_retention(context.settings, context.user)

    async def _drill(self) -> None:
        context = self.context
        result = await drill(context.settings, context.live, context.runs, context.user)
        if not result.succeeded:
            raise BackupError(f"restore drill failed: {result.error}")

    async def _job(self, name: str, job: Callable[[], Awaitable[None]]) -> bool:
        """Run job unless it failed less than RETRY_SECONDS ago; True when it ran."""
        failed_at = self._failed_at.get(name)
        if failed_at is not None and time.monotonic() - failed_at < RETRY_SECONDS:
            return False
        try:
            await job()
        except (BackupError, OSError) as error:
            log.error("scheduled %s failed: %s", name, error)
            self._failed_at[name] = time.monotonic()
            self.metrics.runs.labels(name, "failed").inc()
        else:
            self._failed_at.pop(name, None)
            self.metrics.runs.labels(name, "succeeded").inc()
        return True
