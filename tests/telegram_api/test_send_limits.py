"""Telegram's send limits in the stand-in (load-test mode) and the control calls a load
generator that plays Telegram's side uses: take a chat's updates, count texts delivered."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramRetryAfter

from services.telegram_api import TelegramAPISettings, TelegramServer
from services.telegram_api.limits import SendLimits

from .conftest import TOKEN


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_one_message_a_second_per_chat_and_thirty_overall() -> None:
    clock = Clock()
    limits = SendLimits(clock)
    assert limits.check("sendMessage", 1) is None
    assert limits.check("sendMessage", 1) == 1  # the same chat within the second
    assert limits.check("editMessageText", 1) is None  # edits are not sends
    clock.now += 1.0
    assert limits.check("sendMessage", 1) is None
    # 30 chats at once pass; the 31st waits for the overall bucket.
    clock.now += 10
    assert all(limits.check("sendMessage", chat) is None for chat in range(100, 130))
    assert limits.check("sendMessage", 200) == 1
    assert limits.refused == 2


def test_twenty_a_minute_in_a_group() -> None:
    clock = Clock()
    limits = SendLimits(clock)
    for _ in range(20):  # at once: a group's 20 may come in a burst
        assert limits.check("sendMessage", -100123) is None
    assert limits.check("sendMessage", -100123) == 3  # one more is 3 s of a 20/min refill away
    clock.now += 3
    assert limits.check("sendMessage", -100123) is None


@pytest.fixture
async def limited() -> AsyncIterator[TelegramServer]:
    server = TelegramServer(TelegramAPISettings(port=0, tokens=(TOKEN,), send_limits=True))
    await server.start()
    yield server
    await server.stop()


async def test_a_second_message_within_the_second_gets_429_retry_after(
    limited: TelegramServer,
) -> None:
    session = AiohttpSession(api=TelegramAPIServer.from_base(limited.url))
    async with Bot(TOKEN, session=session) as bot:
        limited.control.send_text(42, "/start")
        await bot.send_message(42, "hello")
        with pytest.raises(TelegramRetryAfter) as refused:
            await bot.send_message(42, "again")
        assert refused.value.retry_after == 1
        await bot.send_message(43, "another chat is not held back")
    async with (
        aiohttp.ClientSession(base_url=limited.url) as http,
        http.get("/__control/texts-delivered") as response,
    ):
        assert (await response.json())["result"] == {"42": 1, "43": 1}


async def test_a_chats_updates_are_taken_out_of_the_queue_in_order(
    limited: TelegramServer,
) -> None:
    async with aiohttp.ClientSession(base_url=limited.url) as http:
        for text in ("/start", "hello"):
            await http.post("/__control/messages", json={"user_id": 7, "text": text})
        await http.post("/__control/messages", json={"user_id": 8, "text": "other chat"})
        async with http.post("/__control/updates/take", json={"chat_id": 7}) as response:
            taken = (await response.json())["result"]
        assert [u["message"]["text"] for u in taken] == ["/start", "hello"]
        assert taken[0]["update_id"] < taken[1]["update_id"]
        async with http.post("/__control/updates/take", json={"chat_id": 7}) as response:
            assert (await response.json())["result"] == []
    assert [u.message.text for u in limited.control.bot().updates.pending() if u.message] == [
        "other chat"
    ]
