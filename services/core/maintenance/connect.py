"""Direct connections to PostgreSQL (never PgBouncer: VACUUM and REINDEX CONCURRENTLY refuse a
transaction block, and session settings such as lock_timeout must stay on one connection)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import asyncpg
from pydantic import SecretStr

from ..settings import MigrationSettings, MonitorRoleSettings

CONNECT_TIMEOUT_SECONDS = 5.0


class Unreachable(Exception):
    """PostgreSQL cannot be reached (or refuses the role): the message says where and why."""


@asynccontextmanager
async def direct(
    host: str,
    port: int,
    database: str,
    user: str,
    password: SecretStr,
    application_name: str = "botstack-maintenance",
) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the server itself; Unreachable when it cannot be opened."""
    try:
        connection = await asyncpg.connect(
            host=host,
            port=port,
            user=user,
            password=password.get_secret_value(),
            database=database,
            timeout=CONNECT_TIMEOUT_SECONDS,
            server_settings={"application_name": application_name},
        )
    except (OSError, asyncpg.PostgresError, TimeoutError) as error:
        raise Unreachable(
            f"cannot connect to PostgreSQL at {host}:{port} as {user}: {error}"
        ) from None
    try:
        yield connection
    finally:
        await connection.close()


@asynccontextmanager
async def connect(
    user: str, password: SecretStr, where: MigrationSettings | None = None
) -> AsyncIterator[asyncpg.Connection]:
    """Where: the server the migrations reach (MIGRATE_HOST, MIGRATE_PORT, MIGRATE_DATABASE)."""
    where = where or MigrationSettings()
    async with direct(where.host, where.port, where.database, user, password) as connection:
        yield connection


def as_owner(
    settings: MigrationSettings | None = None,
) -> AbstractAsyncContextManager[asyncpg.Connection]:
    """As the migration role, which owns the tables: VACUUM, ANALYZE and REINDEX need that."""
    settings = settings or MigrationSettings()
    return connect(settings.user, settings.password, settings)


def as_monitor() -> AbstractAsyncContextManager[asyncpg.Connection]:
    """As the monitoring role (pg_monitor): statistics, no table data."""
    settings = MonitorRoleSettings()
    return connect(settings.user, settings.password)
