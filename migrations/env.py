"""Alembic environment: async, direct to PostgreSQL as the migration role, one migrator at a
time (a session advisory lock), with lock and statement timeouts so that a migration
never queues the running bot's writes behind it for long. Offline mode (`alembic upgrade
--sql`) prints the same statements without a database: `make lint` feeds them to squawk.

How to write a migration that is safe under a live bot: docs/development.md#migrations."""

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
# A lock the migration cannot get at once is waited for this long, then the migration fails
# (and can be retried): waiting longer would queue every update's writes behind the waiting
# ACCESS EXCLUSIVE request. A statement that runs longer than STATEMENT_TIMEOUT is cancelled:
# a migration that needs a long backfill does it in batches, outside the schema change.
LOCK_TIMEOUT = "5s"
STATEMENT_TIMEOUT = "60s"
PREAMBLE = (
    # A second migrator waits here until the first has finished, then finds nothing to do
    # (before the timeouts: waiting for the other migrator is not waiting on the bot). The
    # session's lock, not the transaction's: an autocommit_block's COMMIT (0004) released that
    # one half-way, and the second migrator ran 0004 again beside the first. Closing the
    # connection (run_online) releases it.
    f"SELECT pg_advisory_lock({MIGRATION_LOCK_ID})",
    # For the session, not the transaction: they hold in an autocommit_block too (CREATE
    # INDEX CONCURRENTLY), on this connection of its own.
    f"SET lock_timeout = '{LOCK_TIMEOUT}'",
    f"SET statement_timeout = '{STATEMENT_TIMEOUT}'",
)

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
        for statement in PREAMBLE:
            connection.execute(text(statement))
        context.run_migrations()


def run_offline() -> None:
    """The SQL of the migrations, printed: no connection, literal values."""
    context.configure(
        url="postgresql://",
        target_metadata=metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        for statement in PREAMBLE:
            context.execute(statement)
        context.run_migrations()


async def run_online() -> None:
    engine = create_async_engine(migration_url(), connect_args={"timeout": 10})
    try:
        async with engine.connect() as connection:
            await connection.run_sync(run_migrations)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    asyncio.run(run_online())
