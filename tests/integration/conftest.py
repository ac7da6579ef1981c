"""Integration fixtures: a Database (engine, pool, metrics) through the real PgBouncer in
each mode the layer supports, and a clean set of tables for every test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from services.core.db import Database
from services.core.schema import metadata
from tests.conftest import database_settings

# modern: PgBouncer >= 1.21 with max_prepared_statements, statement caches on (production).
# legacy: PgBouncer 1.18 (the system package here), no protocol-level prepared statements.
MODES = ("modern", "legacy")


def bouncer_dsn(endpoints: dict[str, str], mode: str) -> str:
    if mode == "legacy":
        # Without an older system PgBouncer the legacy settings still run, against the new one.
        return endpoints.get("pgbouncer_legacy_dsn", endpoints["pgbouncer_dsn"])
    return endpoints["pgbouncer_dsn"]


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def owner(endpoints: dict[str, str]) -> AsyncIterator[asyncpg.Connection]:
    """A direct connection as the migration role, for arranging and inspecting rows."""
    connection = await asyncpg.connect(endpoints["postgres_dsn"])
    tables = ", ".join(table.name for table in metadata.sorted_tables)
    await connection.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture
async def database(
    endpoints: dict[str, str], mode: str, owner: asyncpg.Connection
) -> AsyncIterator[Database]:
    settings = database_settings(
        bouncer_dsn(endpoints, mode),
        prepared_statements=mode == "modern",
        pool_size=5,
        max_overflow=5,
    )
    db = Database(settings, CollectorRegistry())
    try:
        yield db
    finally:
        await db.dispose()
