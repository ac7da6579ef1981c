"""The service's schedule: a base backup when the newest one is older than the backup interval
(at once on an empty catalogue), retention after each backup, and a restore drill every drill
interval; with an offsite repository, WAL shipped to it every tick, offsite full and
differential backups (verified, then expired) and a disaster drill every disaster drill
interval; and the database's maintenance (retention, ANALYZE, VACUUM: maintenance.py) when
each is due. A failed job is retried after RETRY_SECONDS, not on every tick. Every tick also
makes sure archive_timeout works on a freshly started server (LiveServer.arm_archive_timeout)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Literal

from prometheus_client import CollectorRegistry

from .basebackup import prepare_directory, take_backup
from .catalogue import Catalogue
from .context import Context
from .disaster import disaster_drill, load_last_disaster_drill
from .drill import drill, load_last_drill
from .errors import BackupError
from .maintenance import JOBS, Maintenance, MaintenanceMetrics
from .metrics import JobMetrics
from .offsite import Offsite
from .offsite_jobs import due_backup, offsite_backup
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

    def disaster_drill_due(self, now: datetime) -> bool:
        if not self.context.settings.offsite_configured:
            return False
        last = load_last_disaster_drill(self.context.settings)
        since = last.started_at if last else self.started
        interval = self.context.settings.disaster_drill_interval_seconds
        return since + timedelta(seconds=interval) <= now

    async def run_forever(self) -> None:
        if not self.context.settings.configured:
            log.error(
                "no backup directory: set BACKUP_SERVICE_STATE_DIR (or BACKUP_SERVICE_DIR and "
                "BACKUP_SERVICE_WAL_ARCHIVE); nothing is scheduled until then"
            )
            return
        prepare_directory(self.context.settings.backup_dir, self.context.user)
        if not self.context.settings.offsite_configured:
            log.warning(
                "no offsite repository (BACKUP_SERVICE_OFFSITE_ENDPOINT/BUCKET unset): every "
                "backup stays on this machine and is lost with it (docs/offsite-backups.md)"
            )
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
            settings = context.settings
            if settings.offsite_configured:
                # Every tick: the offsite copy follows the local archive within a tick.
                await self._job("offsite-ship", self._ship)
                state = Offsite(settings, context.user).load_state()
                kind = due_backup(
                    state,
                    now.timestamp(),
                    settings.offsite_full_interval_seconds,
                    settings.offsite_diff_interval_seconds,
                )
                if kind is not None and await self._job(
                    "offsite-backup", lambda: self._offsite_backup(kind)
                ):
                    return
            if self.drill_due(now) and await self._job("drill", self._drill):
                return
            if self.disaster_drill_due(now) and await self._job(
                "disaster-drill", self._disaster_drill
            ):
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

    async def _ship(self) -> None:
        await Offsite(self.context.settings, self.context.user).ship()

    async def _offsite_backup(self, kind: Literal["full", "diff"]) -> None:
        offsite = Offsite(self.context.settings, self.context.user)
        await offsite_backup(offsite, self.context.runs, kind)

    async def _disaster_drill(self) -> None:
        context = self.context
        result = await disaster_drill(context.settings, context.live, context.runs, context.user)
        if not result.succeeded:
            raise BackupError(f"disaster drill failed: {result.error}")

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
