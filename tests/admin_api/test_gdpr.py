"""GDPR: the export holds everything about the user; erasing leaves no trace of their names,
username or words in any text column, and the revenue figures do not move."""

from __future__ import annotations

import asyncpg
import httpx

from . import seed

SECRETS = ("Zebulon", "Quackenbush", "zeb_q", "my secret diagnosis", "please call me at 555")


async def _revenue(client: httpx.AsyncClient, admin: dict[str, str]) -> tuple[object, ...]:
    revenue = (await client.get("/analytics/revenue?days=30", headers=admin)).json()
    top = (await client.get("/analytics/top-users?days=30", headers=admin)).json()
    total = await client.get("/payments", headers=admin)
    return revenue, [(row["user_id"], row["spend"]) for row in top], total.json()["items"]


async def _text_columns(owner: asyncpg.Connection) -> list[tuple[str, str]]:
    rows = await owner.fetch(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = 'public'"
        " AND data_type IN ('text', 'character varying', 'jsonb', 'json')"
    )
    return [(row["table_name"], row["column_name"]) for row in rows]


async def _holding(owner: asyncpg.Connection, needle: str) -> list[str]:
    found = []
    for table, column in await _text_columns(owner):
        hits = await owner.fetchval(
            f'SELECT count(*) FROM "{table}" WHERE "{column}"::text ILIKE $1', f"%{needle}%"
        )
        if hits:
            found.append(f"{table}.{column}")
    return found


async def _arrange(
    owner: asyncpg.Connection, client: httpx.AsyncClient, admin: dict[str, str]
) -> int:
    user_id = await seed.user(
        owner, 987654, username="zeb_q", first_name="Zebulon", last_name="Quackenbush"
    )
    other = await seed.user(owner, 1234, username="other", first_name="Olga")
    await owner.execute(
        "INSERT INTO conversation_messages (user_id, direction, text, context) VALUES"
        " ($1, 'in', 'my secret diagnosis', '{\"said\": \"please call me at 555\"}'),"
        " ($2, 'in', 'unrelated', '{}')",
        user_id,
        other,
    )
    ticket_id = await seed.ticket(owner, user_id, "my secret diagnosis again")
    await owner.execute(
        "INSERT INTO forum_topics (user_id, chat_id, message_thread_id) VALUES ($1, -100, 7)",
        user_id,
    )
    await client.post(f"/tickets/{ticket_id}/reply", json={"text": "Hi Zebulon"}, headers=admin)
    product_id = await seed.product(owner)
    for amount in (40, 60):
        await seed.payment(owner, user_id, amount, product_id=product_id)
    await seed.payment(owner, other, 5)
    return user_id


async def test_export_holds_everything_about_the_user(
    client: httpx.AsyncClient, admin: dict[str, str], owner: asyncpg.Connection
) -> None:
    user_id = await _arrange(owner, client, admin)
    await client.post(f"/users/{user_id}/block", headers=admin)

    export = (await client.get(f"/users/{user_id}/export", headers=admin)).json()

    assert export["user"]["username"] == "zeb_q"
    assert [m["text"] for m in export["conversation_messages"]] == ["my secret diagnosis"]
    assert export["conversation_messages"][0]["context"] == {"said": "please call me at 555"}
    assert [m["text"] for m in export["tickets"][0]["messages"]] == [
        "my secret diagnosis again",
        "Hi Zebulon",
    ]
    assert sorted(p["amount"] for p in export["payments"]) == [40, 60]
    assert len(export["outbox"]) == 1
    assert [row["action"] for row in export["audit_log"]] == ["user.block"]
    audited = await owner.fetch(
        "SELECT action, actor FROM audit_log WHERE entity = 'user' AND entity_id = $1 ORDER BY id",
        str(user_id),
    )
    assert [row["action"] for row in audited] == ["user.block", "user.export"]


async def test_erase_cancels_upcoming_appointments_and_frees_their_slots(
    client: httpx.AsyncClient, admin: dict[str, str], owner: asyncpg.Connection
) -> None:
    user_id = await _arrange(owner, client, admin)
    other = await owner.fetchval("SELECT id FROM users WHERE telegram_id = 1234")
    slot = "tstzrange(now() + interval '1 day', now() + interval '1 day 1 hour')"
    past = "tstzrange(now() - interval '1 day', now() - interval '23 hours')"
    await owner.execute(
        "INSERT INTO appointments (user_id, resource, starts_at, ends_at, status) SELECT $1, "
        f"'default', lower(r), upper(r), s FROM (VALUES ({slot}, 'booked'), ({past}, "
        "'completed')) AS v(r, s)",
        user_id,
    )
    erased = (await client.post(f"/users/{user_id}/erase", headers=admin)).json()
    assert erased["appointments_cancelled"] == 1
    statuses = await owner.fetch(
        "SELECT status FROM appointments WHERE user_id = $1 ORDER BY starts_at", user_id
    )
    assert [row["status"] for row in statuses] == ["completed", "cancelled"]  # history stays
    # The slot is free: another user can book it now.
    await owner.execute(
        "INSERT INTO appointments (user_id, resource, starts_at, ends_at) SELECT $1, 'default', "
        f"lower(r), upper(r) FROM (VALUES ({slot})) AS v(r)",
        other,
    )


async def test_erase_removes_every_trace_and_keeps_the_books(
    client: httpx.AsyncClient, admin: dict[str, str], owner: asyncpg.Connection
) -> None:
    user_id = await _arrange(owner, client, admin)
    assert await _holding(owner, "Zebulon")  # the scan finds the data while it is there
    figures_before = await _revenue(client, admin)

    response = await client.post(f"/users/{user_id}/erase", headers=admin)

    assert response.status_code == 200
    for secret in SECRETS:
        assert await _holding(owner, secret) == [], secret
    assert await owner.fetchval("SELECT count(*) FROM users WHERE telegram_id = 987654") == 0
    assert await owner.fetchval("SELECT count(*) FROM forum_topics") == 0
    assert await _revenue(client, admin) == figures_before
    assert (
        await owner.fetchval("SELECT text FROM conversation_messages WHERE user_id = $1", user_id)
        is None
    )
    assert (
        await owner.fetchval("SELECT text FROM conversation_messages WHERE user_id <> $1", user_id)
        == "unrelated"
    )
    listed = (await client.get("/users", headers=admin)).json()["items"]
    assert [user["username"] for user in listed] == ["other"]  # erased users leave the list
    again = await client.post(f"/users/{user_id}/erase", headers=admin)
    assert again.status_code == 200
