"""The database layer's Prometheus metrics move when the pool is used."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

from infra.stack import LocalStack
from services.core.db import Database
from services.core.errors import Conflict, DatabaseUnavailable
from services.core.schema import Direction
from tests.conftest import database_settings


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    found = registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


async def test_pool_gauges_follow_checked_out_connections(database: Database) -> None:
    registry = database.metrics.registry
    capacity = database.settings.pool_size + database.settings.max_overflow
    assert value(registry, "db_pool_checked_out") == 0
    held = asyncio.Event()
    release = asyncio.Event()
    entered = 0

    async def hold(update_id: int) -> None:
        nonlocal entered
        async with database.unit_of_work() as uow:
            await uow.updates.record(update_id)
            entered += 1
            if entered == 8:
                held.set()
            await release.wait()

    tasks = [asyncio.create_task(hold(i)) for i in range(8)]
    await asyncio.wait_for(held.wait(), 10)
    assert value(registry, "db_pool_checked_out") == 8
    assert value(registry, "db_pool_utilization") == 8 / capacity
    assert value(registry, "db_pool_overflow") == max(0, 8 - database.settings.pool_size)
    assert value(registry, "db_pool_max_connections") == capacity
    release.set()
    await asyncio.gather(*tasks)
    assert value(registry, "db_pool_checked_out") == 0
    assert value(registry, "db_pool_utilization") == 0
    assert value(registry, "db_pool_wait_seconds_count") == 8


async def test_query_histogram_and_error_counter(database: Database) -> None:
    registry = database.metrics.registry
    before = value(registry, "db_query_duration_seconds_count", operation="insert")
    async with database.unit_of_work() as uow:
        user_id = await uow.users.upsert(1)
        await uow.messages.log(user_id, Direction.OUT, "hello")
        await uow.users.get(user_id)
    assert value(registry, "db_query_duration_seconds_count", operation="insert") == before + 2
    assert value(registry, "db_queries_total", operation="insert") == before + 2
    assert value(registry, "db_query_duration_seconds_count", operation="select") >= 1
    # Buckets reach past the 5 s slow-query alert threshold.
    assert (
        registry.get_sample_value(
            "db_query_duration_seconds_bucket", {"operation": "insert", "le": "10.0"}
        )
        == before + 2
    )

    starts = datetime(2032, 1, 1, 9, tzinfo=UTC)
    slot = (starts, starts + timedelta(hours=1))
    async with database.unit_of_work() as uow:
        await uow.appointments.book(user_id, *slot)
    for _ in range(2):
        with pytest.raises(Conflict):
            async with database.unit_of_work() as uow:
                await uow.appointments.book(user_id, *slot)
    assert value(registry, "db_errors_total", kind="conflict") == 2


async def test_a_connection_that_cannot_be_opened_counts_as_unavailable(
    endpoints: dict[str, str],
) -> None:
    """No statement runs when the connection fails: the error must be counted all the same,
    or the error-rate alert would see an outage as silence."""
    registry = CollectorRegistry()
    down = Database(
        database_settings(endpoints["pgbouncer_dsn"], port=1, connect_timeout=0.5), registry
    )
    try:
        for _ in range(3):
            with pytest.raises(DatabaseUnavailable):
                async with down.unit_of_work() as uow:
                    await uow.updates.record(1)
    finally:
        await down.dispose()
    assert value(registry, "db_errors_total", kind="unavailable") == 3
    # Each with its attempt: the error rate's denominator.
    assert value(registry, "db_queries_total", operation="connect") == 3


async def test_an_outage_behind_pgbouncer_counts_as_unavailable(
    stack: LocalStack, database: Database
) -> None:
    """PgBouncer accepts the client and fails its BEGIN while PostgreSQL is down."""
    registry = database.metrics.registry
    await database.ping()  # a pooled connection to PgBouncer
    before = value(registry, "db_errors_total", kind="unavailable")
    stack.stop_postgres()
    try:
        for _ in range(2):
            with pytest.raises(DatabaseUnavailable):
                async with database.unit_of_work() as uow:
                    await uow.updates.record(1)
    finally:
        stack.start_postgres()
    assert value(registry, "db_errors_total", kind="unavailable") >= before + 2


def _total(registry: CollectorRegistry, name: str) -> float:
    return sum(
        sample.value
        for metric in registry.collect()
        for sample in metric.samples
        if sample.name == name
    )


async def test_each_failed_attempt_is_one_error_and_one_attempt(
    stack: LocalStack, database: Database
) -> None:
    """DatabaseErrorRate divides errors by attempts: during an outage every path (the driver's
    statements, the session's, a readiness ping) counts one error and one attempt per try, so
    the ratio is at most 100% (a BEGIN that failed was counted twice, and never as an
    attempt)."""
    registry = database.metrics.registry
    await database.ping()  # a pooled connection to PgBouncer

    async def driver() -> None:
        async with database.unit_of_work() as uow:
            await uow.updates.record(1)

    async def session() -> None:
        async with database.unit_of_work() as uow:
            await uow.users.get(1)

    errors, attempts = _total(registry, "db_errors_total"), _total(registry, "db_queries_total")
    stack.stop_postgres()
    try:
        for attempt in (driver, session, database.ping) * 2:
            with pytest.raises(DatabaseUnavailable):
                await attempt()
    finally:
        stack.start_postgres()
    assert _total(registry, "db_errors_total") - errors == 6
    assert _total(registry, "db_queries_total") - attempts == 6
