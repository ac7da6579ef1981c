"""The Bot API failing under the bot's immediate replies: what Telegram did not take reaches the
user once it works again, exactly once and in order; a slow Bot API holds neither the webhook
nor the chat; a reply whose request got no answer is never sent again (services/bot/sending.py).
"""

from __future__ import annotations

import asyncpg

from services.telegram_api import TelegramServer

from .conftest import StartBot, count, eventually

USER = 5353
# The outbox backs off 2, 4, 8 s between attempts Telegram refused.
AFTER_FAULT_SECONDS = 60.0


async def _rows(owner: asyncpg.Connection) -> list[asyncpg.Record]:
    return list(
        await owner.fetch(
            "SELECT status::text AS status, attempts, last_error, available_at > now() AS held "
            "FROM outbox ORDER BY id"
        )
    )


async def _all_sent(owner: asyncpg.Connection, rows: int) -> bool:
    return [row["status"] for row in await _rows(owner)] == ["sent"] * rows


async def test_replies_refused_with_5xx_reach_the_user_once_in_order_after_the_fault(
    start_bot: StartBot, server: TelegramServer, owner: asyncpg.Connection
) -> None:
    bot = await start_bot()
    server.control.inject_fault("sendMessage", "server_error", chat_id=USER, status=502, times=None)
    for number, said in enumerate(("/start", "/help", "what now?"), start=1):
        server.control.send_text(USER, said)
        handled = float(number)
        await eventually(lambda: bot.updates("handled") == handled)  # noqa: B023 (awaited here)
    # Acknowledged (Telegram is done with the updates), nothing delivered: each reply failed.
    refused = [call.params["text"] for call in bot.sent(USER)]
    assert bot.texts(USER) == []
    first_tries = list(dict.fromkeys(refused))  # each reply's first attempt, in update order
    assert len(first_tries) == 3
    server.control.clear_faults()
    await eventually(lambda: len(bot.texts(USER)) == 3, AFTER_FAULT_SECONDS)
    assert bot.texts(USER) == first_tries
    await eventually(lambda: _all_sent(owner, 3))
    assert bot.texts(USER) == first_tries  # all marked sent: nothing left to send again
    # Logged once each, with their updates; the outbox sent them on the updates' behalf.
    outbound = "SELECT count(*) FROM conversation_messages WHERE direction = 'out'"
    assert await count(owner, outbound) == 3


async def test_a_slow_reply_is_handed_to_the_outbox_and_delivered_once(
    start_bot: StartBot, server: TelegramServer, owner: asyncpg.Connection
) -> None:
    bot = await start_bot(reply_wait_seconds=0.2)
    server.control.inject_fault("sendMessage", "delay", chat_id=USER, delay=4)
    server.control.send_text(USER, "/help")
    # The webhook answered without waiting for Telegram: the reply is held in the outbox while
    # its request is still out.
    await eventually(lambda: bot.updates("handled") == 1)
    held = await _rows(owner)
    assert [(row["status"], row["attempts"], row["held"]) for row in held] == [("pending", 0, True)]
    # Telegram answered late: the row is marked sent, never made by the outbox.
    await eventually(lambda: _all_sent(owner, 1))
    assert [row["attempts"] for row in await _rows(owner)] == [0]
    assert len(bot.texts(USER)) == 1
    assert len(bot.sent(USER)) == 1


async def test_a_reply_that_got_no_answer_is_not_sent_again(
    start_bot: StartBot, server: TelegramServer, owner: asyncpg.Connection
) -> None:
    bot = await start_bot(reply_wait_seconds=0.2, api_timeout_seconds=1)
    # Telegram takes the call but answers only after the bot has stopped waiting (it acts on
    # a request whose client hung up, as the stand-in does).
    server.control.inject_fault("sendMessage", "delay", chat_id=USER, delay=3)
    server.control.send_text(USER, "/help")
    await eventually(lambda: bot.updates("handled") == 1)

    async def given_up() -> bool:
        rows = await _rows(owner)
        return [row["status"] for row in rows] == ["failed"]

    await eventually(given_up)
    (row,) = await _rows(owner)
    assert row["last_error"].startswith("in doubt, not sent again")
    assert row["attempts"] == 0  # the outbox never made it
    await eventually(lambda: len(bot.texts(USER)) == 1)  # Telegram delivered the one request
    server.control.send_text(USER, "/start")  # the chat goes on; the first reply stays single
    await eventually(lambda: len(bot.texts(USER)) == 2)
    assert len(bot.sent(USER)) == 2
