"""getUpdates: offset confirmation, negative offsets, long polling, allowed_updates, and
the conflict with an active webhook."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramConflictError

from services.telegram_api import TelegramServer

USER = 99


async def test_offset_confirms_earlier_updates(bot: Bot, server: TelegramServer) -> None:
    pushed = [server.control.send_text(USER, f"message {n}") for n in range(3)]
    ids = [update.update_id for update in pushed]

    assert [u.update_id for u in await bot.get_updates()] == ids
    assert [u.update_id for u in await bot.get_updates()] == ids  # nothing confirmed yet
    assert [u.update_id for u in await bot.get_updates(offset=ids[1])] == ids[1:]
    assert [u.update_id for u in await bot.get_updates(offset=ids[1], limit=1)] == ids[1:2]
    assert await bot.get_updates(offset=ids[2] + 1) == []
    # Confirmed updates are gone for good.
    assert await bot.get_updates() == []


async def test_negative_offset_keeps_only_the_last(bot: Bot, server: TelegramServer) -> None:
    for n in range(4):
        server.control.send_text(USER, f"message {n}")
    last = await bot.get_updates(offset=-1)
    assert len(last) == 1 and last[0].message is not None
    assert last[0].message.text == "message 3"
    assert [u.update_id for u in await bot.get_updates()] == [last[0].update_id]


async def test_long_polling_returns_when_an_update_arrives(
    bot: Bot, server: TelegramServer
) -> None:
    async def user_writes_soon() -> None:
        await asyncio.sleep(0.2)
        server.control.send_text(USER, "wake up")

    started = time.monotonic()
    writer = asyncio.create_task(user_writes_soon())
    updates = await bot.get_updates(timeout=10)
    await writer
    assert 0.15 <= time.monotonic() - started < 5
    assert [u.message.text for u in updates if u.message] == ["wake up"]


async def test_long_polling_times_out_empty(bot: Bot) -> None:
    started = time.monotonic()
    assert await bot.get_updates(timeout=1) == []
    assert time.monotonic() - started >= 0.9


async def test_allowed_updates_filters(bot: Bot, server: TelegramServer) -> None:
    server.control.send_text(USER, "text")
    sent = await bot.send_message(USER, "menu", reply_markup=None)
    assert sent.message_id == 2
    server.control.push_update(
        {
            "callback_query": {
                "id": "q1",
                "from": {"id": USER, "is_bot": False, "first_name": "U"},
                "chat_instance": "1",
                "data": "x",
            }
        }
    )
    only_queries = await bot.get_updates(allowed_updates=["callback_query"])
    assert [u.callback_query.id for u in only_queries if u.callback_query] == ["q1"]


async def test_get_updates_conflicts_with_a_webhook(bot: Bot, server: TelegramServer) -> None:
    await bot.set_webhook("http://127.0.0.1:9/unreachable")
    with pytest.raises(TelegramConflictError, match="webhook is active"):
        await bot.get_updates()
    assert await bot.delete_webhook()
    assert await bot.get_updates() == []


async def test_a_second_poller_ends_the_first_with_a_conflict(
    bot: Bot, server: TelegramServer
) -> None:
    first = asyncio.create_task(bot.get_updates(timeout=10))
    await asyncio.sleep(0.2)
    second = asyncio.create_task(bot.get_updates(timeout=10))
    with pytest.raises(TelegramConflictError, match="terminated by other getUpdates request"):
        await first
    server.control.send_text(USER, "for the survivor")
    assert [u.message.text for u in await second if u.message] == ["for the survivor"]


async def test_a_restarted_server_never_reuses_an_update_id(
    bot: Bot, server: TelegramServer
) -> None:
    before = [server.control.send_text(USER, f"message {n}").update_id for n in range(50)]
    await server.reset()  # what a restart does to the stand-in's state
    await asyncio.sleep(0.01)
    after = server.control.send_text(USER, "after the restart").update_id
    assert after > max(before)
