"""Sandbox data for a developer's `make up`: products for /buy, so the stand-in's /chat page
can buy credits with a click. Only an empty products table is filled: whatever a developer
created or changed through the admin API stays as it is."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

import asyncpg

from .stack import DEFAULT_STATE_DIR

# (code, title, description, price in Stars, credits)
PRODUCTS = [
    ("sandbox-small", "Starter pack", "Ten message credits (sandbox product)", 5, 10),
    ("sandbox-large", "Big pack", "Fifty message credits (sandbox product)", 20, 50),
]


async def seed(postgres_dsn: str) -> int:
    """Adds the sandbox products when there are none; returns how many were added."""
    connection = await asyncpg.connect(postgres_dsn)
    try:
        async with connection.transaction():
            # Two `make up`s at once must not both see an empty table.
            await connection.execute("LOCK TABLE products IN SHARE ROW EXCLUSIVE MODE")
            if await connection.fetchval("SELECT count(*) FROM products"):
                return 0
            await connection.executemany(
                "INSERT INTO products (code, title, description, price_stars, credits) "
                "VALUES ($1, $2, $3, $4, $5)",
                PRODUCTS,
            )
        return len(PRODUCTS)
    finally:
        await connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m infra.sandbox",
        description="Add sandbox products to a running local stack whose products table is empty.",
    )
    parser.add_argument(
        "--state-dir", type=Path, default=DEFAULT_STATE_DIR, help="the stack's state directory"
    )
    state_dir = parser.parse_args().state_dir
    endpoints = json.loads((state_dir / "endpoints.json").read_text())
    added = asyncio.run(seed(endpoints["postgres_dsn"]))
    if added:
        print(f"sandbox: added {added} products for /buy")
    if "telegram_api_url" in endpoints:
        print(f"chat with the bot: {endpoints['telegram_api_url']}/chat")


if __name__ == "__main__":
    main()
