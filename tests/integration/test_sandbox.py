"""`make up`'s sandbox products: added to an empty table once, never over a developer's own."""

from __future__ import annotations

import asyncpg

from infra.sandbox import PRODUCTS, seed


async def test_an_empty_catalogue_gets_the_sandbox_products_once(
    owner: asyncpg.Connection, endpoints: dict[str, str]
) -> None:
    assert await seed(endpoints["postgres_dsn"]) == len(PRODUCTS)
    assert await seed(endpoints["postgres_dsn"]) == 0
    codes = [row[0] for row in await owner.fetch("SELECT code FROM products ORDER BY id")]
    assert codes == [code for code, *_ in PRODUCTS]


async def test_a_developers_own_products_are_left_alone(
    owner: asyncpg.Connection, endpoints: dict[str, str]
) -> None:
    await owner.execute(
        "INSERT INTO products (code, title, description, price_stars, credits, is_active) "
        "VALUES ('mine', 'Mine', '', 1, 1, false)"
    )
    assert await seed(endpoints["postgres_dsn"]) == 0
    assert await owner.fetchval("SELECT count(*) FROM products") == 1
