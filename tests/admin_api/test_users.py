"""Users: search, filters, detail, block and credit adjustments."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import httpx

from . import seed


async def _ids(client: httpx.AsyncClient, admin: dict[str, str], query: str) -> list[int]:
    response = await client.get(f"/users?{query}", headers=admin)
    assert response.status_code == 200, response.text
    return [user["id"] for user in response.json()["items"]]


async def test_search_by_username_name_or_telegram_id(
    client: httpx.AsyncClient, admin: dict[str, str], owner: asyncpg.Connection
) -> None:
    alice = await seed.user(owner, 111, username="alice_w", first_name="Alice", last_name="Wonder")
    bob = await seed.user(owner, 222, username="bobby", first_name="Robert", last_name="Smith")
    percent = await seed.user(owner, 333, username="x100", first_name="100% real")

    assert await _ids(client, admin, "q=ALICE") == [alice]
    assert await _ids(client, admin, "q=smi") == [bob]
    assert await _ids(client, admin, "q=222") == [bob]
    assert await _ids(client, admin, "q=%25") == [percent]  # `%` is literal, not a wildcard
    assert await _ids(client, admin, "q=nobody") == []
    assert await _ids(client, admin, "q=%C2%B2") == []  # "²" is a digit to Python, not a number


async def test_filters_by_flags_and_creation_range(
    client: httpx.AsyncClient, admin: dict[str, str], owner: asyncpg.Connection
) -> None:
    day = datetime(2026, 3, 1, tzinfo=UTC)
    old = await seed.user(owner, 1, created_at=day - timedelta(days=10))
    blocked = await seed.user(owner, 2, created_at=day, is_blocked=True)
    gone = await seed.user(owner, 3, created_at=day + timedelta(days=1), is_active=False)

    assert await _ids(client, admin, "is_blocked=true") == [blocked]
    assert await _ids(client, admin, "is_active=false") == [gone]
    since = (day - timedelta(hours=1)).isoformat().replace("+", "%2B")
    assert await _ids(client, admin, f"created_from={since}") == [gone, blocked]
    assert await _ids(client, admin, f"created_to={since}") == [old]


async def test_detail_holds_tickets_bookings_and_payments(
    client: httpx.AsyncClient, admin: dict[str, str], owner: asyncpg.Connection
) -> None:
    user_id = await seed.user(owner, 5)
    ticket_id = await seed.ticket(owner, user_id)
    payment_id = await seed.payment(owner, user_id, 100)
    await owner.execute(
        "INSERT INTO appointments (user_id, starts_at, ends_at)"
        " VALUES ($1, now(), now() + interval '1 hour')",
        user_id,
    )

    detail = (await client.get(f"/users/{user_id}", headers=admin)).json()

    assert detail["user"]["telegram_id"] == 5
    assert [t["id"] for t in detail["tickets"]] == [ticket_id]
    assert [p["id"] for p in detail["payments"]] == [payment_id]
    assert len(detail["appointments"]) == 1


async def test_block_and_unblock(
    client: httpx.AsyncClient, admin: dict[str, str], owner: asyncpg.Connection
) -> None:
    user_id = await seed.user(owner, 6)
    blocked = await client.post(f"/users/{user_id}/block", headers=admin)
    assert blocked.json()["is_blocked"] is True
    assert await owner.fetchval("SELECT is_blocked FROM users") is True
    unblocked = await client.post(f"/users/{user_id}/unblock", headers=admin)
    assert unblocked.json()["is_blocked"] is False
    actions = await owner.fetch("SELECT action, summary FROM audit_log ORDER BY id")
    assert [row["action"] for row in actions] == ["user.block", "user.unblock"]


async def test_credits_adjust_with_reason_and_never_go_below_zero(
    client: httpx.AsyncClient, admin: dict[str, str], owner: asyncpg.Connection
) -> None:
    user_id = await seed.user(owner, 8, credits=3)

    added = await client.post(
        f"/users/{user_id}/credits", json={"delta": 7, "reason": "apology"}, headers=admin
    )
    refused = await client.post(
        f"/users/{user_id}/credits", json={"delta": -11, "reason": "too much"}, headers=admin
    )

    assert added.json()["credits"] == 10
    assert refused.status_code == 422
    assert refused.json()["field"] == "body.delta"
    assert await owner.fetchval("SELECT credits FROM users") == 10
    change = await owner.fetchrow(
        "SELECT delta, balance_after, reason, staff_id FROM credit_changes"
    )
    assert (change["delta"], change["balance_after"], change["reason"]) == (7, 10, "apology")
    assert change["staff_id"] is not None
