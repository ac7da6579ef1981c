"""Alembic environment: async, direct to PostgreSQL as the migration role, one migrator at a
time (a transaction-scoped advisory lock)."""

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy import URL, Connection, text
from sqlalchemy.ext.asyncio import create_async_engine

from services.core.db.engine import asyncpg_url
from services.core.schema import metadata
from services.core.settings import MigrationSettings

# Any constant both migrators agree on; "botstack" as ASCII.
MIGRATION_LOCK_ID = 0x626F74737461636B

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name)


def migration_url() -> URL:
    settings = MigrationSettings()
    return asyncpg_url(
        user=settings.user,
        password=settings.password,
        host=settings.host,
        port=settings.port,
        database=settings.database,
    )


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        compare_type=True,
        compare_server_default=True,
    )
    with context.begin_transaction():
        # A second migrator waits here until the first commits, then finds nothing to do.
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
        context.run_migrations()


async def run_online() -> None:
    engine = create_async_engine(migration_url(), connect_args={"timeout": 10})
    try:
        async with engine.connect() as connection:
            await connection.run_sync(run_migrations)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported: run against the database")
asyncio.run(run_online())
