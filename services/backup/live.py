"""The live PostgreSQL server, reached directly as the backup role (never through PgBouncer):
WAL switches, the archiver's figures, the current timeline."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from services.core.settings import BackupRoleSettings

from .errors import BackupError
from .settings import BackupServiceSettings

log = logging.getLogger("services.backup")
CONNECT_TIMEOUT_SECONDS = 5.0


class ServerUnreachable(BackupError):
    """The live server does not accept the backup role's connection."""


@dataclass(frozen=True)
class ArchiverStats:
    archived_count: int
    failed_count: int
    last_archived_wal: str | None
    last_archived_at: datetime | None
    last_failed_wal: str | None
    last_failed_at: datetime | None


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
    async def connect(self) -> AsyncIterator[asyncpg.Connection]:
        try:
            connection = await asyncpg.connect(
                host=self.settings.pg_host,
                port=self.settings.pg_port,
                user=self.role.user,
                password=self.role.password.get_secret_value(),
                database=self.settings.pg_database,
                timeout=CONNECT_TIMEOUT_SECONDS,
            )
        except (OSError, asyncpg.PostgresError, TimeoutError) as error:
            raise ServerUnreachable(
                f"cannot connect to PostgreSQL at {self.address}: {error}"
            ) from None
        try:
            yield connection
        except asyncpg.PostgresError as error:
            raise BackupError(f"PostgreSQL at {self.address}: {error}") from None
        finally:
            await connection.close()

    async def system_identifier(self) -> str:
        async with self.connect() as connection:
            return str(
                await connection.fetchval("SELECT system_identifier FROM pg_control_system()")
            )

    async def current_lsn(self) -> str:
        async with self.connect() as connection:
            return str(await connection.fetchval("SELECT pg_current_wal_lsn()::text"))

    async def archiver(self) -> ArchiverStats:
        async with self.connect() as connection:
            row = await connection.fetchrow(
                "SELECT archived_count, failed_count, last_archived_wal, last_archived_time,"
                " last_failed_wal, last_failed_time FROM pg_stat_archiver"
            )
        return ArchiverStats(*row)

    async def arm_archive_timeout(self) -> bool:
        """Checkpoint once per start of the server, unless it checkpointed since; True if it
        did.

        PostgreSQL 15 switches WAL segments on archive_timeout only once a checkpoint has
        happened since start-up: until the first timed one (checkpoint_timeout, 5 min) a
        restarted server archives nothing, though the stack promises at most 60 s of commits
        unarchived (seen in the load runs; WalArchiveStale fired after every restart). The
        control file keeps whole seconds, so a checkpoint in the second the server started
        counts as before it."""
        async with self.connect() as connection:
            started = await connection.fetchval("SELECT pg_postmaster_start_time()")
            if started == self._armed_for:
                return False
            stale = await connection.fetchval(
                "SELECT checkpoint_time <= date_trunc('second', $1::timestamptz) "
                "FROM pg_control_checkpoint()",
                started,
            )
            if stale:
                log.info("no checkpoint since PostgreSQL started: CHECKPOINT, for archive_timeout")
                await connection.execute("CHECKPOINT")
            self._armed_for = started
        return bool(stale)

    async def switch_wal_and_wait(self) -> int:
        """Close the current WAL segment and wait until it is archived, so that a restore to
        "latest" includes every commit made before this call. Returns the live timeline."""
        async with self.connect() as connection:
            segment = await connection.fetchval("SELECT pg_walfile_name(pg_switch_wal())")
            log.info("waiting for the live server to archive WAL segment %s ...", segment)
            deadline = time.monotonic() + self.settings.archive_wait_seconds
            while True:
                last = await connection.fetchval("SELECT last_archived_wal FROM pg_stat_archiver")
                # Names sort in WAL order within a timeline; .partial and .history names too.
                if last is not None and last[:24] >= segment:
                    return int(segment[:8], 16)
                if time.monotonic() > deadline:
                    failed = await connection.fetchrow(
                        "SELECT last_failed_wal, failed_count FROM pg_stat_archiver"
                    )
                    raise BackupError(
                        f"WAL segment {segment} is not archived after "
                        f"{self.settings.archive_wait_seconds:.0f} s (last archived: {last}, "
                        f"last failed: {failed['last_failed_wal']}, failures: "
                        f"{failed['failed_count']}); check the archive directory and the "
                        "PostgreSQL log"
                    )
                await asyncio.sleep(0.2)
