"""What every operation needs, built once per process: settings, the live server, the
backup_runs log and the OS user that runs PostgreSQL's programs."""

from __future__ import annotations

import fcntl
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass

from prometheus_client import REGISTRY, CollectorRegistry

from services.core.db import Database
from services.core.os_user import ServiceUser
from services.core.settings import BackupRoleSettings, DatabaseSettings

from .basebackup import prepare_directory
from .live import LiveServer
from .runs import RunLog
from .settings import BackupServiceSettings

log = logging.getLogger("services.backup")


@dataclass(frozen=True)
class Context:
    settings: BackupServiceSettings
    live: LiveServer
    database: Database
    runs: RunLog
    user: ServiceUser

    @contextmanager
    def exclusive(self, *, wait: bool = True) -> Iterator[bool]:
        """One backup, restore, drill or retention at a time per backup directory, whether
        the service or an operator's command started it. Yields False when wait is False and
        another operation holds the lock."""
        prepare_directory(self.settings.backup_dir, self.user)
        lock = self.settings.backup_dir / ".lock"
        if not lock.exists():
            lock.touch(0o600)
            # An operator's command run as root and the service run as the PostgreSQL user
            # share this lock: it belongs to the latter.
            self.user.own(lock)
        with lock.open("a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not wait:
                    yield False
                    return
                log.info("another backup operation is running on %s; waiting ...", handle.name)
                fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def create_context(
    settings: BackupServiceSettings | None = None, registry: CollectorRegistry = REGISTRY
) -> Context:
    settings = settings or BackupServiceSettings()
    database = Database(DatabaseSettings(), registry)
    return Context(
        settings=settings,
        live=LiveServer(settings, BackupRoleSettings()),
        database=database,
        runs=RunLog(database),
        user=ServiceUser.detect(),
    )


@asynccontextmanager
async def open_context(
    settings: BackupServiceSettings | None = None, registry: CollectorRegistry = REGISTRY
) -> AsyncIterator[Context]:
    context = create_context(settings, registry)
    try:
        yield context
    finally:
        await context.database.dispose()
