"""The live PostgreSQL server, reached directly as the backup role (never through PgBouncer):
WAL switches, the archiver's figures, the current timeline."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

from services.core.maintenance import wal
from services.core.maintenance.connect import Unreachable
from services.core.maintenance.wal import ArchiverStats
from services.core.settings import BackupRoleSettings

from .errors import BackupError
from .settings import BackupServiceSettings

log = logging.getLogger("services.backup")

__all__ = ["ArchiverStats", "LiveServer", "ServerUnreachable"]


class ServerUnreachable(BackupError):
    """The live server does not accept the backup role's connection."""


class LiveServer:
    def __init__(self, settings: BackupServiceSettings, role: BackupRoleSettings) -> None:
        self.settings = settings
        self.role = role
        # The server start arm_archive_timeout last saw (it checkpoints once per start).
        self._armed_for: datetime | None = None

    @property
    def address(self) -> str:
        return f"{self.settings.pg_host}:{self.settings.pg_port}"

    def libpq_env(self) -> dict[str, str]:
        """The environment pg_basebackup and pg_dump need to log in as the backup role."""
        return {
            "PGHOST": self.settings.pg_host,
            "PGPORT": str(self.settings.pg_port),
            "PGUSER": self.role.user,
            "PGPASSWORD": self.role.password.get_secret_value(),
            "PGDATABASE": self.settings.pg_database,
        }

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[wal.LiveServer]:
        """The server's statements (services/core/maintenance/wal.py) on one connection."""
        try:
            async with wal.connect(
                self.settings.pg_host,
                self.settings.pg_port,
                self.settings.pg_database,
                self.role.user,
                self.role.password,
            ) as server:
                yield server
        except Unreachable as error:
            raise ServerUnreachable(str(error)) from None
        except wal.ServerFailed as error:
            raise BackupError(f"PostgreSQL at {self.address}: {error}") from None

    async def system_identifier(self) -> str:
        async with self.connect() as server:
            return await server.system_identifier()

    async def current_lsn(self) -> str:
        async with self.connect() as server:
            return await server.current_lsn()

    async def archiver(self) -> ArchiverStats:
        async with self.connect() as server:
            return await server.archiver()

    async def user_tables(self) -> int:
        async with self.connect() as server:
            return await server.user_tables()

    async def arm_archive_timeout(self) -> bool:
        """Checkpoint once per start of the server, unless it checkpointed since; True if it
        did.

        PostgreSQL 15 switches WAL segments on archive_timeout only once a checkpoint has
        happened since start-up: until the first timed one (checkpoint_timeout, 5 min) a
        restarted server archives nothing, though the stack promises at most 60 s of commits
        unarchived (seen in the load runs; WalArchiveStale fired after every restart)."""
        async with self.connect() as server:
            started = await server.started_at()
            if started == self._armed_for:
                return False
            stale = not await server.checkpointed_since(started)
            if stale:
                log.info("no checkpoint since PostgreSQL started: CHECKPOINT, for archive_timeout")
                await server.checkpoint()
            self._armed_for = started
        return stale

    async def switch_wal_and_wait(self) -> int:
        """Close the current WAL segment and wait until it is archived, so that a restore to
        "latest" includes every commit made before this call. Returns the live timeline."""
        async with self.connect() as server:
            segment = await server.switch_wal()
            log.info("waiting for the live server to archive WAL segment %s ...", segment)
            deadline = time.monotonic() + self.settings.archive_wait_seconds
            while True:
                archiver = await server.archiver()
                last = archiver.last_archived_wal
                # Names sort in WAL order within a timeline; .partial and .history names too.
                if last is not None and last[:24] >= segment:
                    return int(segment[:8], 16)
                if time.monotonic() > deadline:
                    raise BackupError(
                        f"WAL segment {segment} is not archived after "
                        f"{self.settings.archive_wait_seconds:.0f} s (last archived: {last}, "
                        f"last failed: {archiver.last_failed_wal}, failures: "
                        f"{archiver.failed_count}); check the archive directory and the "
                        "PostgreSQL log"
                    )
                await asyncio.sleep(0.2)
