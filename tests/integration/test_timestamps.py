"""`updated_at` is the schema's job: a write path that never mentions it still moves it, and
a new table cannot forget it."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import sqlalchemy as sa
from sqlmodel import col

from services.core.db import Database
from services.core.schema import Product, User, metadata

LONG_AGO = datetime(2020, 1, 1, tzinfo=UTC)


async def test_an_orm_change_that_does_not_set_updated_at_still_advances_it(
    database: Database, owner: asyncpg.Connection
) -> None:
    product_id = await owner.fetchval(
        "INSERT INTO products (code, title, description, price_stars, credits, created_at,"
        " updated_at) VALUES ('p', 'old title', '', 10, 1, $1, $1) RETURNING id",
        LONG_AGO,
    )
    async with database.unit_of_work() as uow:
        product = await uow.session.get(Product, product_id)
        assert product is not None
        product.title = "new title"  # and nothing else
    async with database.unit_of_work() as uow:
        unchanged = await uow.session.get(Product, product_id)
        assert unchanged is not None
        _ = unchanged.title  # read, nothing written: no UPDATE, no new time
    row = await owner.fetchrow(
        "SELECT title, updated_at, created_at, now() AS now FROM products WHERE id = $1",
        product_id,
    )
    assert row["title"] == "new title"
    assert row["created_at"] == LONG_AGO
    assert LONG_AGO < row["updated_at"] <= row["now"]


async def test_a_core_update_that_does_not_set_updated_at_still_advances_it(
    database: Database, owner: asyncpg.Connection
) -> None:
    user_id = await owner.fetchval(
        "INSERT INTO users (telegram_id, first_name, created_at, updated_at)"
        " VALUES (42, 'Ann', $1, $1) RETURNING id",
        LONG_AGO,
    )
    updated = "SELECT updated_at FROM users WHERE id = $1"
    async with database.unit_of_work() as uow:
        await uow.session.execute(
            sa.update(User).where(col(User.id) == user_id).values(first_name="Anna")
        )
    assert await owner.fetchval(updated, user_id) > LONG_AGO
    await owner.execute("UPDATE users SET updated_at = $1 WHERE id = $2", LONG_AGO, user_id)
    async with database.unit_of_work() as uow:  # the ledger's own statement
        await uow.billing.change_credits(user_id, 3, "gift")
    assert await owner.fetchval(updated, user_id) > LONG_AGO


def test_every_updated_at_column_is_maintained_on_update() -> None:
    columns = [table.c.updated_at for table in metadata.sorted_tables if "updated_at" in table.c]
    assert len(columns) >= 6
    forgotten = [str(column) for column in columns if column.onupdate is None]
    assert forgotten == [], f"use schema.base.updated_field() for {forgotten}"
