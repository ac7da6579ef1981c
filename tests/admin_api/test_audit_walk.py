"""Every mutating route in the OpenAPI document writes its audit entry, in the same
transaction as its change."""

from __future__ import annotations

import asyncpg
import httpx
from fastapi import FastAPI

from .routes import CALLS, arrange, mutating_routes


async def test_every_mutating_route_writes_its_audit_entry(
    client: httpx.AsyncClient, admin: dict[str, str], owner: asyncpg.Connection, app: FastAPI
) -> None:
    world = await arrange(owner)
    routes = mutating_routes(app.openapi())
    assert set(routes) == set(CALLS), "every mutating route needs an entry in routes.CALLS"
    for route in CALLS:  # in CALLS order: erasing the user comes last
        call = CALLS[route](world)
        before = await owner.fetchval("SELECT coalesce(max(id), 0) FROM audit_log")

        response = await client.request(call.method, call.path, json=call.body, headers=admin)

        assert response.status_code in (200, 201), (route, response.text)
        entries = await owner.fetch(
            "SELECT actor, action, entity, entity_id FROM audit_log WHERE id > $1", before
        )
        assert len(entries) == 1, route
        entry = entries[0]
        entity_id = str(response.json()["id"]) if call.entity_id == "new" else call.entity_id
        assert (entry["actor"], entry["entity"], entry["entity_id"]) == (
            "admin",
            call.entity,
            entity_id,
        ), route


async def test_a_refused_change_writes_no_audit_entry(
    client: httpx.AsyncClient, admin: dict[str, str], owner: asyncpg.Connection
) -> None:
    world = await arrange(owner)

    response = await client.post(
        f"/users/{world.user_id}/credits", json={"delta": -1, "reason": "oops"}, headers=admin
    )

    assert response.status_code == 422
    assert await owner.fetchval("SELECT count(*) FROM audit_log") == 0
    assert await owner.fetchval("SELECT credits FROM users") == 0
