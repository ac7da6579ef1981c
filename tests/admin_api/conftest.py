"""Admin API fixtures: the app over the shared `database` (tests/conftest.py: through the
stack's PgBouncer, tables emptied for every test), an API key per role, and an HTTP client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from services.admin_api.app import create_app
from services.admin_api.auth import issue_key
from services.admin_api.settings import AdminApiSettings
from services.core.db import Database
from services.core.schema import Role, Staff

# High enough that no test but the rate-limit one ever meets the limit.
UNLIMITED = AdminApiSettings(
    rate_limit_per_minute=1_000_000,
    rate_burst=1_000_000,
    failed_auth_per_minute=1_000_000,
    failed_auth_burst=1_000_000,
)


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
