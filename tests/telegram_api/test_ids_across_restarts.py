"""A restarted stand-in (state directory kept) hands out larger message and topic ids than
before, as Telegram does: the bot's database, which outlives it, stores them (a ticket's forum
topic, a ticket message's id)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

from services.telegram_api import TelegramAPISettings, TelegramServer
from services.telegram_api.ids import BLOCK

from .conftest import TOKEN

USER = 4242
STAFF_GROUP = -1001234567890


@asynccontextmanager
async def running(state_dir: Path | None) -> AsyncIterator[tuple[TelegramServer, Bot]]:
    """The stand-in as `python -m services.telegram_api` runs it, stopped at the end."""
    server = TelegramServer(TelegramAPISettings(port=0, tokens=(TOKEN,), state_dir=state_dir))
    await server.start()
    session = AiohttpSession(api=TelegramAPIServer.from_base(server.url))
    try:
        async with Bot(TOKEN, session=session) as bot:
            yield server, bot
    finally:
        await server.stop()


async def test_topic_and_message_ids_continue_after_a_restart(tmp_path: Path) -> None:
    async with running(tmp_path) as (_, bot):
        first_topic = await bot.create_forum_topic(STAFF_GROUP, "Ticket #1")
        # More than a reserved block of ids in one chat before the restart.
        for n in range(BLOCK + 5):
            last = await bot.send_message(USER, f"message {n}")
    async with running(tmp_path) as (_, bot):
        topic = await bot.create_forum_topic(STAFF_GROUP, "Ticket #2")
        message = await bot.send_message(USER, "after the restart")
        # A chat the bot never wrote to before the restart is no exception.
        other = await bot.send_message(USER + 1, "a new chat")
    assert topic.message_thread_id > last.message_id > first_topic.message_thread_id
    assert message.message_id > last.message_id
    assert other.message_id > last.message_id


async def test_a_reset_continues_the_ids_too(tmp_path: Path) -> None:
    async with running(tmp_path) as (server, bot):
        before = await bot.send_message(USER, "before")
        await server.reset()
        after = await bot.send_message(USER, "after")
    assert after.message_id > before.message_id


async def test_without_a_state_directory_a_chat_starts_at_one() -> None:
    for _ in range(2):
        async with running(None) as (_, bot):
            assert (await bot.send_message(USER, "hello")).message_id == 1


async def test_an_unreadable_id_file_is_refused_by_name(tmp_path: Path) -> None:
    (tmp_path / f"bot{TOKEN.split(':')[0]}-message-ids").write_text("garbage")
    with pytest.raises(ValueError, match="bot1000000001-message-ids holds 'garbage'"):
        TelegramServer(TelegramAPISettings(port=0, tokens=(TOKEN,), state_dir=tmp_path))
