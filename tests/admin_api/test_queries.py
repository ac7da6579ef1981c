"""The list and search queries under load: cursor pagination while rows are inserted, and
index use shown by EXPLAIN on a table large enough for the planner to care."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
from sqlalchemy import Select
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg

from services.core.repositories.pages import Key, newest_first
from services.core.repositories.users import live_users
from services.core.schema import User

from . import seed

BASE = datetime(2026, 1, 1, tzinfo=UTC)


async def test_cursor_pagination_serves_every_row_once_while_rows_are_inserted(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    owner: asyncpg.Connection,
    endpoints: dict[str, str],
) -> None:
    existing = {
        await seed.user(owner, telegram_id, created_at=BASE + timedelta(minutes=telegram_id % 97))
        for telegram_id in range(1, 401)
    }
    writer = await asyncpg.connect(endpoints["postgres_dsn"])
    stop = asyncio.Event()

    async def insert_concurrently() -> int:
        # New rows land everywhere in the order, before and after the page being read, and
        # with created_at equal to existing rows' (ties are broken by id).
        inserted, telegram_id = 0, 100_000
        while not stop.is_set():
            telegram_id += 1
            minute = random.randrange(-10, 110)
            await seed.user(writer, telegram_id, created_at=BASE + timedelta(minutes=minute))
            inserted += 1
            await asyncio.sleep(0)
        return inserted

    inserter = asyncio.create_task(insert_concurrently())
    seen: list[int] = []
    cursor = None
    try:
        while True:
            url = "/users?limit=25" + (f"&cursor={cursor}" if cursor else "")
            page = (await client.get(url, headers=admin)).json()
            seen += [user["id"] for user in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
    finally:
        stop.set()
        inserted = await inserter
        await writer.close()

    assert inserted > 0
    assert len(seen) == len(set(seen)), "a row was served twice"
    assert existing <= set(seen), "a row that existed before paging began was skipped"


async def _plan(owner: asyncpg.Connection, statement: Select[Any]) -> str:
    """The plan of the statement as the service sends it (with bind parameters)."""
    compiled = statement.compile(dialect=PGDialect_asyncpg())  # type: ignore[no-untyped-call]
    names = compiled.positiontup or []
    rows = await owner.fetch(f"EXPLAIN {compiled}", *(compiled.params[name] for name in names))
    return "\n".join(row[0] for row in rows)


def users_query(*, after: Key | None = None, q: str | None = None) -> Select[Any]:
    """The statement a page of GET /users sends (50 rows)."""
    return newest_first(live_users(q=q), User, after, 50)


async def test_search_and_lookups_use_indexes(owner: asyncpg.Connection) -> None:
    await owner.execute(
        "INSERT INTO users (telegram_id, username, first_name, last_name, created_at)"
        " SELECT n, 'user' || n, 'First' || n, 'Last' || n, now() - n * interval '1 minute'"
        " FROM generate_series(1, 100000) AS n"
    )
    await owner.execute("ANALYZE users")

    plans = {
        "first page": await _plan(owner, users_query()),
        "next page": await _plan(
            owner, users_query(after=(datetime.now(UTC) - timedelta(days=3), 5000))
        ),
        "username": await _plan(owner, users_query(q="user2999")),
        "name": await _plan(owner, users_query(q="Last1234")),
        "telegram id": await _plan(owner, users_query(q="12345")),
    }

    for name, plan in plans.items():
        assert "Seq Scan" not in plan, f"{name}:\n{plan}"
    assert "ix_users_live_created" in plans["first page"]
    assert "ix_users_live_created" in plans["next page"]
    assert "ix_users_search_trgm" in plans["username"]
    assert "ix_users_search_trgm" in plans["name"]
    assert "uq_users_telegram_id" in plans["telegram id"]
