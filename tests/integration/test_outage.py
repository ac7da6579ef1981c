"""PostgreSQL going away behind PgBouncer: services get DatabaseUnavailable quickly instead of
hanging, and the same engine recovers once PostgreSQL is back."""

from __future__ import annotations

import time

import pytest

from infra.stack import LocalStack
from services.core.db import Database
from services.core.errors import DatabaseUnavailable

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
