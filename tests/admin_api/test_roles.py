"""Authentication and the role boundaries: viewer < operator < admin."""

from __future__ import annotations

import json

import asyncpg
import httpx
from fastapi import FastAPI

from services.admin_api.app import create_app
from services.admin_api.settings import AdminApiSettings
from services.core.db import Database
from services.core.schema import Role

from .conftest import bearer
from .routes import ADMIN_ONLY, CALLS, World, arrange, mutating_routes

PROBLEM = "application/problem+json"


async def _call(
    client: httpx.AsyncClient, route: tuple[str, str], world: World, key: str
) -> httpx.Response:
    call = CALLS[route](world)
    return await client.request(call.method, call.path, json=call.body, headers=bearer(key))


async def test_missing_key_is_401_saying_so(client: httpx.AsyncClient) -> None:
    response = await client.get("/users")
    assert response.status_code == 401
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["www-authenticate"] == "Bearer"
    assert "missing API key" in response.json()["detail"]


async def test_unknown_key_is_401(client: httpx.AsyncClient) -> None:
    response = await client.get("/users", headers=bearer("bsk_not-a-key"))
    assert response.status_code == 401
    assert "unknown or revoked" in response.json()["detail"]


async def test_revoked_key_gets_401_on_its_next_request(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    staff = (
        await client.post("/staff", json={"name": "temp", "role": "operator"}, headers=admin)
    ).json()
    issued = (
        await client.post(f"/staff/{staff['id']}/keys", json={"name": "laptop"}, headers=admin)
    ).json()
    assert (await client.get("/users", headers=bearer(issued["key"]))).status_code == 200

    revoked = await client.post(f"/keys/{issued['id']}/revoke", headers=admin)

    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    response = await client.get("/users", headers=bearer(issued["key"]))
    assert response.status_code == 401
    assert "key" not in revoked.json()  # the clear key is never shown again


async def test_deactivated_staff_keys_stop_working(
    client: httpx.AsyncClient, admin: dict[str, str], keys: dict[Role, str]
) -> None:
    staff = (await client.get("/staff", headers=admin)).json()
    viewer_id = next(member["id"] for member in staff if member["name"] == "viewer")
    await client.patch(f"/staff/{viewer_id}", json={"is_active": False}, headers=admin)
    assert (await client.get("/users", headers=bearer(keys[Role.VIEWER]))).status_code == 401


async def test_reactivation_brings_no_old_key_back(
    client: httpx.AsyncClient, admin: dict[str, str], owner: asyncpg.Connection
) -> None:
    staff = (
        await client.post("/staff", json={"name": "sam", "role": "operator"}, headers=admin)
    ).json()
    issued = [
        (await client.post(f"/staff/{staff['id']}/keys", json={"name": n}, headers=admin)).json()
        for n in ("laptop", "phone")
    ]
    await client.post(f"/keys/{issued[1]['id']}/revoke", headers=admin)

    off = await client.patch(f"/staff/{staff['id']}", json={"is_active": False}, headers=admin)
    refused = await client.post(f"/staff/{staff['id']}/keys", json={"name": "x"}, headers=admin)
    on = await client.patch(f"/staff/{staff['id']}", json={"is_active": True}, headers=admin)

    assert off.status_code == on.status_code == 200 and on.json()["is_active"] is True
    # A key issued while deactivated would come to life now, so none is.
    assert refused.status_code == 409 and "deactivated" in refused.json()["detail"]
    assert (await client.get("/users", headers=bearer(issued[0]["key"]))).status_code == 401
    keys = (await client.get(f"/staff/{staff['id']}/keys", headers=admin)).json()
    assert [key["revoked_at"] is not None for key in keys] == [True, True]
    summary = await owner.fetchval(
        "SELECT summary FROM audit_log WHERE action = 'staff.update' ORDER BY id LIMIT 1"
    )
    # The entry names the keys the deactivation revoked (the phone's was revoked before).
    assert json.loads(summary) == {"is_active": [True, False], "revoked_key_ids": [issued[0]["id"]]}
    fresh = await client.post(f"/staff/{staff['id']}/keys", json={"name": "new"}, headers=admin)
    assert (await client.get("/users", headers=bearer(fresh.json()["key"]))).status_code == 200


async def test_viewer_can_read_but_change_nothing(
    client: httpx.AsyncClient, keys: dict[Role, str], owner: asyncpg.Connection, app: FastAPI
) -> None:
    world = await arrange(owner)
    routes = mutating_routes(app.openapi())
    assert set(routes) == set(CALLS)
    for route in routes:
        response = await _call(client, route, world, keys[Role.VIEWER])
        assert response.status_code == 403, route
        assert response.headers["content-type"] == PROBLEM
        assert "requires the operator role" in response.json()["detail"] or (
            "requires the admin role" in response.json()["detail"]
        )
    assert await owner.fetchval("SELECT count(*) FROM audit_log") == 0
    assert await owner.fetchval("SELECT is_blocked FROM users") is False
    assert (await client.get("/users", headers=bearer(keys[Role.VIEWER]))).status_code == 200


async def test_operator_cannot_manage_keys_products_or_configuration(
    client: httpx.AsyncClient, keys: dict[Role, str], owner: asyncpg.Connection, app: FastAPI
) -> None:
    world = await arrange(owner)
    for route in mutating_routes(app.openapi()):
        response = await _call(client, route, world, keys[Role.OPERATOR])
        if route in ADMIN_ONLY:
            assert response.status_code == 403, route
            assert "requires the admin role" in response.json()["detail"]
        else:
            assert response.status_code in (200, 201), (route, response.text)
    for path in ("/staff", f"/staff/{world.staff_id}/keys"):
        assert (await client.get(path, headers=bearer(keys[Role.OPERATOR]))).status_code == 403


async def test_rate_limit_answers_429_with_retry_after(
    database: Database, keys: dict[Role, str]
) -> None:
    limited = create_app(AdminApiSettings(rate_limit_per_minute=1, rate_burst=2), database)
    transport = httpx.ASGITransport(app=limited)
    async with httpx.AsyncClient(transport=transport, base_url="http://admin-api") as client:
        statuses = [
            (await client.get("/products", headers=bearer(keys[Role.VIEWER]))).status_code
            for _ in range(3)
        ]
        other = await client.get("/products", headers=bearer(keys[Role.ADMIN]))
        limited_response = await client.get("/products", headers=bearer(keys[Role.VIEWER]))
    assert statuses == [200, 200, 429]
    assert other.status_code == 200  # the limit is per key
    assert limited_response.headers["content-type"] == PROBLEM
    assert 1 <= int(limited_response.headers["retry-after"]) <= 60
