"""Rows arranged directly in the database (as the migration role) for the tests."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg


async def user(
    owner: asyncpg.Connection,
    telegram_id: int,
    *,
    username: str | None = None,
    first_name: str = "Test",
    last_name: str | None = None,
    credits: int = 0,
    created_at: datetime | None = None,
    **flags: bool,
) -> int:
    user_id: int = await owner.fetchval(
        "INSERT INTO users (telegram_id, username, first_name, last_name, credits, created_at,"
        " is_active, is_blocked) VALUES ($1, $2, $3, $4, $5, coalesce($6, now()), $7, $8)"
        " RETURNING id",
        telegram_id,
        username,
        first_name,
        last_name,
        credits,
        created_at,
        flags.get("is_active", True),
        flags.get("is_blocked", False),
    )
    return user_id


async def ticket(
    owner: asyncpg.Connection, user_id: int, text: str = "It does not work", **columns: Any
) -> int:
    names = ["user_id", "subject", *columns]
    values = [user_id, text[:40], *columns.values()]
    placeholders = ", ".join(f"${n}" for n in range(1, len(values) + 1))
    ticket_id: int = await owner.fetchval(
        f"INSERT INTO tickets ({', '.join(names)}) VALUES ({placeholders}) RETURNING id", *values
    )
    await owner.execute(
        "INSERT INTO ticket_messages (ticket_id, author, text) VALUES ($1, 'user', $2)",
        ticket_id,
        text,
    )
    return ticket_id


async def product(owner: asyncpg.Connection, code: str = "pack10", price: int = 50) -> int:
    product_id: int = await owner.fetchval(
        "INSERT INTO products (code, title, description, price_stars, credits)"
        " VALUES ($1, $1, '', $2, 10)"
        " RETURNING id",
        code,
        price,
    )
    return product_id


async def payment(
    owner: asyncpg.Connection,
    user_id: int,
    amount: int,
    *,
    product_id: int | None = None,
    created_at: datetime | None = None,
) -> int:
    payment_id: int = await owner.fetchval(
        "INSERT INTO payments (user_id, product_id, telegram_payment_charge_id, amount, credits,"
        " created_at) VALUES ($1, $2, 'charge-' || gen_random_uuid(), $3, 0,"
        " coalesce($4, now())) RETURNING id",
        user_id,
        product_id,
        amount,
        created_at,
    )
    return payment_id
