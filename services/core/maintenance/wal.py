"""The live server's WAL and archiver, as the backup service reads and drives them: over a
direct connection as the backup role (never PgBouncer: pg_switch_wal and CHECKPOINT act on
the server, and the role has REPLICATION plus reads, no table data)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from pydantic import SecretStr

from .connect import direct

# Tables pg_dump will dump (its progress is counted in tables).
USER_TABLES = (
    "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE c.relkind = 'r' AND n.nspname <> 'information_schema'"
    " AND n.nspname NOT LIKE 'pg\\_%'"
)


class ServerFailed(Exception):
    """PostgreSQL refused a statement: the message is its error."""


@dataclass(frozen=True)
class ArchiverStats:
    archived_count: int
    failed_count: int
    last_archived_wal: str | None
    last_archived_at: datetime | None
    last_failed_wal: str | None
    last_failed_at: datetime | None


class LiveServer:
    """The statements, on one open connection."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self._connection = connection

    async def system_identifier(self) -> str:
        return str(
            await self._connection.fetchval("SELECT system_identifier FROM pg_control_system()")
        )

    async def archiver(self) -> ArchiverStats:
        row = await self._connection.fetchrow(
            "SELECT archived_count, failed_count, last_archived_wal, last_archived_time,"
            " last_failed_wal, last_failed_time FROM pg_stat_archiver"
        )
        return ArchiverStats(*row)

    async def started_at(self) -> datetime:
        """When the server (postmaster) started."""
        started: datetime = await self._connection.fetchval("SELECT pg_postmaster_start_time()")
        return started

    async def checkpointed_since(self, moment: datetime) -> bool:
        """Whether a checkpoint happened after `moment`. The control file keeps whole
        seconds, so a checkpoint in the second of `moment` counts as before it."""
        stale = await self._connection.fetchval(
            "SELECT checkpoint_time <= date_trunc('second', $1::timestamptz) "
            "FROM pg_control_checkpoint()",
            moment,
        )
        return not stale

    async def checkpoint(self) -> None:
        await self._connection.execute("CHECKPOINT")

    async def switch_wal(self) -> str:
        """Closes the current WAL segment; its file name."""
        segment: str = await self._connection.fetchval("SELECT pg_walfile_name(pg_switch_wal())")
        return segment

    async def user_tables(self) -> int:
        return int(await self._connection.fetchval(USER_TABLES))

    async def current_lsn(self) -> str:
        return str(await self._connection.fetchval("SELECT pg_current_wal_lsn()::text"))

    async def newest_commit(self) -> datetime | None:
        """The newest commit's time (None before any: needs track_commit_timestamp)."""
        newest: datetime | None = await self._connection.fetchval(
            "SELECT (pg_last_committed_xact()).timestamp"
        )
        return newest

    async def snapshot(self, tables: list[str]) -> tuple[datetime | None, dict[str, int]]:
        """The newest commit's time and each table's row count, in one snapshot."""
        async with self._connection.transaction(isolation="repeatable_read"):
            newest = await self.newest_commit()
            counts = {
                name: int(await self._connection.fetchval(f"SELECT count(*) FROM {name}"))
                for name in tables
            }
        return newest, counts


@asynccontextmanager
async def connect(
    host: str, port: int, database: str, user: str, password: SecretStr
) -> AsyncIterator[LiveServer]:
    """Unreachable (connect.py) when the server cannot be reached; ServerFailed when it
    refuses a statement."""
    async with direct(host, port, database, user, password, "botstack-backup") as connection:
        try:
            yield LiveServer(connection)
        except asyncpg.PostgresError as error:
            raise ServerFailed(str(error)) from None
