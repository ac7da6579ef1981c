"""PostgreSQL going away behind PgBouncer: services get DatabaseUnavailable quickly instead of
hanging, and the same engine recovers once PostgreSQL is back."""

from __future__ import annotations

import time

import pytest
from prometheus_client import CollectorRegistry

from infra.stack import LocalStack
from services.core.db import Database
from services.core.errors import DatabaseUnavailable
from tests.conftest import database_settings
from tests.integration.conftest import bouncer_dsn

# Far above the configured timeouts (PgBouncer's query_wait_timeout, the pool and connect
# timeouts): failing this means a request hung instead of failing fast.
HANG_LIMIT_SECONDS = 15


async def test_database_down_fails_fast_and_recovers(stack: LocalStack, database: Database) -> None:
    await database.ping()  # the pool holds a live connection to PgBouncer
    stack.stop_postgres()
    try:
        for _ in range(3):  # a fresh request each time, never a hang
            started = time.monotonic()
            with pytest.raises(DatabaseUnavailable):
                async with database.unit_of_work() as uow:
                    await uow.updates.record(1)
            assert time.monotonic() - started < HANG_LIMIT_SECONDS
    finally:
        stack.start_postgres()
    await database.ping()
    async with database.unit_of_work() as uow:
        assert await uow.updates.record(2) is True


async def test_database_down_at_the_first_connection_is_unavailable(
    stack: LocalStack, endpoints: dict[str, str], mode: str
) -> None:
    """A process starting while PostgreSQL is down (its engine has never connected)."""
    settings = database_settings(bouncer_dsn(endpoints, mode), prepared_statements=mode == "modern")
    database = Database(settings, CollectorRegistry())
    stack.stop_postgres()
    try:
        with pytest.raises(DatabaseUnavailable):
            async with database.unit_of_work() as uow:
                await uow.updates.record(1)
    finally:
        stack.start_postgres()
    try:
        async with database.unit_of_work() as uow:
            await uow.updates.record(3)
    finally:
        await database.dispose()
