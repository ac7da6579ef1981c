"""Admin API fixtures: the app over a real Database through the stack's PgBouncer, an API
key per role, and an HTTP client. Tables are emptied for every test by `owner`."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from services.admin_api.app import create_app
from services.admin_api.auth import issue_key
from services.admin_api.settings import AdminApiSettings
from services.core.db import Database
from services.core.schema import Role, Staff
from tests.conftest import database_settings
from tests.integration.conftest import owner

__all__ = ["owner"]  # the integration tier's fixture: a direct connection, tables truncated

# High enough that no test but the rate-limit one ever meets the limit.
UNLIMITED = AdminApiSettings(
    rate_limit_per_minute=1_000_000,
    rate_burst=1_000_000,
    failed_auth_per_minute=1_000_000,
    failed_auth_burst=1_000_000,
)


@pytest.fixture
async def database(endpoints: dict[str, str], owner: asyncpg.Connection) -> AsyncIterator[Database]:
    db = Database(database_settings(endpoints["pgbouncer_dsn"]), CollectorRegistry())
    try:
        yield db
    finally:
        await db.dispose()


@pytest.fixture
def app(database: Database) -> FastAPI:
    return create_app(UNLIMITED, database)


@pytest.fixture
async def keys(database: Database) -> dict[Role, str]:
    """An API key for one staff member of each role (named after the role)."""
    issued = {}
    async with database.unit_of_work() as uow:
        for role in Role:
            staff = Staff(name=role.value, role=role)
            uow.session.add(staff)
            await uow.session.flush()
            assert staff.id is not None
            issued[role] = (await issue_key(uow, staff.id, f"{role} key")).key
    return issued


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://admin-api") as http:
        yield http


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def admin(keys: dict[Role, str]) -> dict[str, str]:
    return bearer(keys[Role.ADMIN])
