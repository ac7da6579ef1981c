"""Health probes, metrics, and `make admin-key` (the key command-line tool)."""

from __future__ import annotations

import asyncio
import os
import sys
from urllib.parse import urlsplit

import asyncpg
import httpx
from prometheus_client import CollectorRegistry

from services.admin_api.app import create_app
from services.core.db import Database
from services.core.schema import Role
from tests.conftest import REPO, database_settings
from tests.integration.conftest import bouncer_dsn

from . import seed
from .conftest import UNLIMITED, bearer


async def test_health_probes(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health/live")).json() == {"status": "ok"}
    assert (await client.get("/health/ready")).json() == {"status": "ok"}


async def test_metrics_count_requests_by_route_template_and_include_database_metrics(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    for user_id in (1, 2, 3):
        await client.get(f"/users/{user_id}", headers=admin)

    text = (await client.get("/metrics")).text

    assert 'http_requests_total{method="GET",route="/users/{user_id}",status="404"} 3.0' in text
    assert 'http_request_duration_seconds_count{method="GET",route="/users/{user_id}"} 3.0' in text
    assert "db_queries_total" in text
    assert "db_pool_size" in text
    assert "/users/1" not in text  # never the raw path


async def _keys(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.admin_api.keys",
        "create",
        *args,
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def test_key_command_prints_a_working_admin_key_last(
    endpoints: dict[str, str], owner: asyncpg.Connection, client: httpx.AsyncClient
) -> None:
    dsn = urlsplit(endpoints["pgbouncer_dsn"])
    env = os.environ | {
        "DB_HOST": str(dsn.hostname),
        "DB_PORT": str(dsn.port),
        "DB_USER": str(dsn.username),
        "DB_PASSWORD": str(dsn.password),
        "DB_NAME": dsn.path.lstrip("/"),
    }
    returncode, stdout, _ = await _keys(env, "--role", "admin", "--name", "ops")
    key = stdout.strip().splitlines()[-1]

    response = await client.post(
        "/staff", json={"name": "second", "role": "viewer"}, headers=bearer(key)
    )

    assert returncode == 0
    assert response.status_code == 201
    assert await owner.fetchval("SELECT key_hash FROM api_keys") != key  # only the hash is kept
    returncode, _, stderr = await _keys(env, "--role", "viewer", "--name", "ops")
    assert returncode == 1
    assert "exists with role admin" in stderr
    # A deactivated member gets no key: it would come to life on their reactivation.
    await owner.execute("UPDATE staff SET is_active = false WHERE name = 'ops'")
    returncode, _, stderr = await _keys(env, "--role", "admin", "--name", "ops")
    assert returncode == 1
    assert "deactivated" in stderr


async def test_works_through_the_legacy_pgbouncer_without_prepared_statements(
    endpoints: dict[str, str], owner: asyncpg.Connection, keys: dict[Role, str]
) -> None:
    settings = database_settings(bouncer_dsn(endpoints, "legacy"), prepared_statements=False)
    legacy = Database(settings, CollectorRegistry())
    user_id = await seed.user(owner, 31337, username="legacy")
    transport = httpx.ASGITransport(app=create_app(UNLIMITED, legacy))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://admin-api") as client:
            for _ in range(3):  # repeated statements on whatever server connection comes
                listed = await client.get("/users?q=legacy", headers=bearer(keys[Role.ADMIN]))
                assert [user["id"] for user in listed.json()["items"]] == [user_id]
            blocked = await client.post(
                f"/users/{user_id}/block", headers=bearer(keys[Role.OPERATOR])
            )
    finally:
        await legacy.dispose()
    assert blocked.json()["is_blocked"] is True
    assert await owner.fetchval("SELECT count(*) FROM audit_log") == 1
