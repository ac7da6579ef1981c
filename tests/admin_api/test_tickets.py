"""Tickets: listing, detail, and the reply that reaches the user through the outbox."""

from __future__ import annotations

import asyncpg
import httpx

from services.core.schema import Role

from . import seed
from .conftest import bearer


async def test_reply_creates_exactly_one_outbox_row_addressed_to_the_user(
    client: httpx.AsyncClient, admin: dict[str, str], owner: asyncpg.Connection
) -> None:
    user_id = await seed.user(owner, 424242, username="asker")
    other_id = await seed.user(owner, 555, username="bystander")
    ticket_id = await seed.ticket(owner, user_id, "My credits are gone")
    await seed.ticket(owner, other_id)

    response = await client.post(
        f"/tickets/{ticket_id}/reply", json={"text": "Restored them, sorry!"}, headers=admin
    )

    assert response.status_code == 201
    outbox = await owner.fetch("SELECT chat_id, user_id, method, payload, status FROM outbox")
    assert len(outbox) == 1
    row = outbox[0]
    assert (row["chat_id"], row["user_id"], row["method"], row["status"]) == (
        424242,
        user_id,
        "notice",  # the bot words it in the user's language when it sends it
        "pending",
    )
    assert '"Restored them, sorry!"' in row["payload"]
    assert response.json()["outbox_id"] == await owner.fetchval("SELECT id FROM outbox")
    ticket = await owner.fetchrow(
        "SELECT status, first_response_at FROM tickets WHERE id = $1", ticket_id
    )
    assert ticket["status"] == "in_progress"
    assert ticket["first_response_at"] is not None


async def test_closed_ticket_cannot_be_answered_and_the_user_hears_only_of_the_closing(
    client: httpx.AsyncClient, admin: dict[str, str], owner: asyncpg.Connection
) -> None:
    ticket_id = await seed.ticket(owner, await seed.user(owner, 7))
    closed = await client.post(
        f"/tickets/{ticket_id}/close", json={"solution": "Duplicate"}, headers=admin
    )
    assert closed.json()["status"] == "closed"
    assert closed.json()["solution"] == "Duplicate"

    response = await client.post(f"/tickets/{ticket_id}/reply", json={"text": "hi"}, headers=admin)

    assert response.status_code == 409
    # The user was told of the closing, and of nothing else.
    notices = await owner.fetch("SELECT payload->>'notice' AS notice FROM outbox")
    assert [row["notice"] for row in notices] == ["support_closed"]
    assert await owner.fetchval("SELECT count(*) FROM ticket_messages") == 1


async def test_list_by_status_and_assignee_and_detail_with_messages(
    client: httpx.AsyncClient, keys: dict[Role, str], owner: asyncpg.Connection
) -> None:
    admin, operator = bearer(keys[Role.ADMIN]), bearer(keys[Role.OPERATOR])
    user_id = await seed.user(owner, 9)
    first = await seed.ticket(owner, user_id, "first")
    second = await seed.ticket(owner, user_id, "second")
    staff = {
        member["name"]: member["id"]
        for member in (await client.get("/staff", headers=admin)).json()
    }
    await client.post(
        f"/tickets/{first}/assign", json={"staff_id": staff["operator"]}, headers=operator
    )
    await client.post(f"/tickets/{first}/reply", json={"text": "on it"}, headers=operator)

    mine = await client.get(f"/tickets?assignee={staff['operator']}", headers=admin)
    still_open = await client.get("/tickets?status=open", headers=admin)
    detail = await client.get(f"/tickets/{first}", headers=admin)

    assert [ticket["id"] for ticket in mine.json()["items"]] == [first]
    assert [ticket["id"] for ticket in still_open.json()["items"]] == [second]
    assert [(m["author"], m["text"]) for m in detail.json()["messages"]] == [
        ("user", "first"),
        ("staff", "on it"),
    ]
    assert detail.json()["assigned_staff_id"] == staff["operator"]


async def test_assigning_to_unknown_staff_is_404(
    client: httpx.AsyncClient, admin: dict[str, str], owner: asyncpg.Connection
) -> None:
    ticket_id = await seed.ticket(owner, await seed.user(owner, 10))
    response = await client.post(
        f"/tickets/{ticket_id}/assign", json={"staff_id": 999}, headers=admin
    )
    assert response.status_code == 404
    assert response.json()["detail"] == "staff 999 not found"
