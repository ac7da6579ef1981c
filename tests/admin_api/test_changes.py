"""PATCH applies every field it accepts or refuses the request naming the field, and a change
that changes nothing leaves no audit entry; flags and settings no service reads are refused."""

from __future__ import annotations

import json

import asyncpg
import httpx

from . import seed


async def _audit_count(owner: asyncpg.Connection) -> int:
    return int(await owner.fetchval("SELECT count(*) FROM audit_log"))


async def test_product_patch_applies_is_active_and_refuses_unknown_fields(
    client: httpx.AsyncClient, admin: dict[str, str], owner: asyncpg.Connection
) -> None:
    product_id = await seed.product(owner)
    await client.post(f"/products/{product_id}/deactivate", headers=admin)
    audits = await _audit_count(owner)
    back = await client.patch(f"/products/{product_id}", json={"is_active": True}, headers=admin)
    assert back.status_code == 200 and back.json()["is_active"] is True
    assert await owner.fetchval("SELECT is_active FROM products WHERE id = $1", product_id)
    summary = await owner.fetchval("SELECT summary FROM audit_log ORDER BY id DESC LIMIT 1")
    assert "is_active" in summary
    assert await _audit_count(owner) == audits + 1

    unknown = await client.patch(f"/products/{product_id}", json={"colour": "red"}, headers=admin)
    assert unknown.status_code == 422 and unknown.json()["field"] == "body.colour"
    null = await client.patch(f"/products/{product_id}", json={"title": None}, headers=admin)
    assert null.status_code == 422 and null.json()["field"] == "body.title"
    same = await client.patch(f"/products/{product_id}", json={"is_active": True}, headers=admin)
    assert same.status_code == 200
    assert await _audit_count(owner) == audits + 1  # nothing changed, nothing audited


async def test_staff_patch_links_a_telegram_account(
    client: httpx.AsyncClient, admin: dict[str, str], owner: asyncpg.Connection
) -> None:
    created = await client.post("/staff", json={"name": "kim", "role": "operator"}, headers=admin)
    staff_id = created.json()["id"]
    linked = await client.patch(f"/staff/{staff_id}", json={"telegram_id": 5551}, headers=admin)
    assert linked.status_code == 200 and linked.json()["telegram_id"] == 5551
    assert await owner.fetchval("SELECT telegram_id FROM staff WHERE id = $1", staff_id) == 5551
    unlinked = await client.patch(f"/staff/{staff_id}", json={"telegram_id": None}, headers=admin)
    assert unlinked.json()["telegram_id"] is None
    refused = await client.patch(f"/staff/{staff_id}", json={"name": "x"}, headers=admin)
    assert refused.status_code == 422 and refused.json()["field"] == "body.name"


async def test_flags_and_settings_no_service_reads_are_refused(
    client: httpx.AsyncClient, admin: dict[str, str], owner: asyncpg.Connection
) -> None:
    flag = await client.put("/flags/new.shiny", json={"enabled": True}, headers=admin)
    assert flag.status_code == 422 and flag.json()["field"] == "path.key"
    assert "payments.enabled" in flag.json()["detail"]  # says which exist
    setting = await client.put("/settings/welcome.text", json={"value": "Hi"}, headers=admin)
    assert setting.status_code == 422 and "booking.hours" in setting.json()["detail"]
    assert await owner.fetchval("SELECT count(*) FROM feature_flags") == 0
    assert await owner.fetchval("SELECT count(*) FROM runtime_settings") == 0
    assert await _audit_count(owner) == 0
    known = await client.put("/flags/payments.enabled", json={"enabled": False}, headers=admin)
    assert known.status_code == 200


async def _audit_summaries(owner: asyncpg.Connection) -> list[tuple[str, object]]:
    rows = await owner.fetch("SELECT action, summary FROM audit_log ORDER BY id")
    return [(row["action"], json.loads(row["summary"])) for row in rows]


async def test_a_repeated_block_or_unblock_changes_nothing_and_audits_nothing(
    client: httpx.AsyncClient, admin: dict[str, str], owner: asyncpg.Connection
) -> None:
    user_id = await seed.user(owner, 61)
    for path in ("block", "block", "unblock", "unblock"):
        response = await client.post(f"/users/{user_id}/{path}", headers=admin)
        assert response.status_code == 200
        assert response.json()["is_blocked"] is (path == "block")
    assert await _audit_summaries(owner) == [
        ("user.block", {"is_blocked": [False, True]}),
        ("user.unblock", {"is_blocked": [True, False]}),
    ]


async def test_a_flag_or_setting_put_with_the_current_value_audits_nothing(
    client: httpx.AsyncClient, admin: dict[str, str], owner: asyncpg.Connection
) -> None:
    flag = "/flags/payments.enabled"
    first = await client.put(flag, json={"enabled": True}, headers=admin)
    again = await client.put(flag, json={"enabled": True}, headers=admin)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()  # updated_at too: nothing was written
    described = await client.put(
        flag, json={"enabled": True, "description": "Stars"}, headers=admin
    )
    assert described.json()["description"] == "Stars"

    hours = {"open": "09:00", "close": "18:00", "slot_minutes": 30, "timezone": "Europe/Berlin"}
    for _ in range(2):
        setting = await client.put("/settings/booking.hours", json={"value": hours}, headers=admin)
        assert setting.status_code == 200, setting.text
    later = hours | {"close": "19:00"}
    await client.put("/settings/booking.hours", json={"value": later}, headers=admin)

    assert await _audit_summaries(owner) == [
        ("flag.set", {"enabled": [None, True]}),
        ("flag.set", {"description": ["", "Stars"]}),
        ("setting.set", {"value": [None, hours]}),
        ("setting.set", {"value": [hours, later]}),
    ]


async def test_a_repeated_deactivation_or_assignment_changes_nothing(
    client: httpx.AsyncClient, admin: dict[str, str], owner: asyncpg.Connection
) -> None:
    product_id = await seed.product(owner)
    for _ in range(2):
        off = await client.post(f"/products/{product_id}/deactivate", headers=admin)
        assert off.status_code == 200 and off.json()["is_active"] is False
    ticket_id = await seed.ticket(owner, await seed.user(owner, 62))
    staff_id = await owner.fetchval("SELECT id FROM staff WHERE name = 'operator'")
    for _ in range(2):
        taken = await client.post(
            f"/tickets/{ticket_id}/assign", json={"staff_id": staff_id}, headers=admin
        )
        assert taken.status_code == 200 and taken.json()["assigned_staff_id"] == staff_id
    assert [action for action, _ in await _audit_summaries(owner)] == [
        "product.deactivate",
        "ticket.assign",
    ]
    # The user is told once that their ticket is being handled.
    assert await owner.fetchval("SELECT count(*) FROM outbox") == 1
