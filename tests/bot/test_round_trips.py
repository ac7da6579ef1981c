"""The database round trips of one plain update (/start, /help, a text with no ticket open),
counted by PgBouncer:
its admin console's SHOW STATS counts every query a server answered (total_query_count,
live, per database), BEGIN and COMMIT included."""

from __future__ import annotations

import asyncio
import csv
import io
from urllib.parse import urlsplit

import asyncpg
import pytest

from services.telegram_api import TelegramServer

from .conftest import StartBot, count, eventually

USER = 5151
MAX_ROUND_TRIPS = 2


async def _queries(admin_dsn: str, database: str) -> int:
    """total_query_count of the database, through psql: the admin console speaks only the
    simple query protocol, which asyncpg's fetch does not use."""
    psql = await asyncio.create_subprocess_exec(
        "psql", admin_dsn, "--csv", "-c", "SHOW STATS", stdout=asyncio.subprocess.PIPE
    )
    out, _ = await psql.communicate()
    assert psql.returncode == 0, "psql could not read PgBouncer's SHOW STATS"
    rows = csv.DictReader(io.StringIO(out.decode()))
    return sum(int(row["total_query_count"]) for row in rows if row["database"] == database)


# Updates the handlers answer from memory: commands, and a text from a user without an active
# support ticket (the catch-all answer; whether there is a ticket comes with the first read).
@pytest.mark.parametrize("text", ["/start", "/help", "hello, what can you do?"])
async def test_a_plain_update_takes_at_most_two_round_trips(
    start_bot: StartBot,
    server: TelegramServer,
    owner: asyncpg.Connection,
    endpoints: dict[str, str],
    text: str,
) -> None:
    database = urlsplit(endpoints["pgbouncer_dsn"]).path.lstrip("/")
    # No outbox loop: it polls through PgBouncer and would be counted.
    bot = await start_bot(outbox_delivery=False)
    # The first update of a pooled connection also prepares its statements (once each).
    server.control.send_text(USER, text, first_name="Ann")
    await eventually(lambda: len(bot.texts(USER)) == 1)
    before = await _queries(endpoints["pgbouncer_admin_dsn"], database)
    # A user seen before and one the bot has never met, one after the other (so on the
    # connection whose statements are prepared).
    server.control.send_text(USER, text, first_name="Ann")
    await eventually(lambda: len(bot.texts(USER)) == 2)
    server.control.send_text(USER + 1, text, first_name="Ann")
    await eventually(lambda: len(bot.texts(USER + 1)) == 1)
    trips = (await _queries(endpoints["pgbouncer_admin_dsn"], database) - before) / 2
    assert 0 < trips <= MAX_ROUND_TRIPS, f"{trips} round trips per update"
    # And everything was written: two users, each message in and out.
    assert await count(owner, "SELECT count(*) FROM processed_updates") == 3
    assert await count(owner, "SELECT count(*) FROM users") == 2
    rows = await owner.fetch(
        "SELECT u.telegram_id, m.direction::text FROM conversation_messages m "
        "JOIN users u ON u.id = m.user_id ORDER BY m.id"
    )
    assert [(row["telegram_id"], row["direction"]) for row in rows] == [
        (USER, "in"),
        (USER, "out"),
        (USER, "in"),
        (USER, "out"),
        (USER + 1, "in"),
        (USER + 1, "out"),
    ]
