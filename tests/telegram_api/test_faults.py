"""Injected faults reach aiogram as the exceptions a production bot must handle."""

from __future__ import annotations

import time

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramForbiddenError, TelegramRetryAfter, TelegramServerError

from services.telegram_api import FaultKind, TelegramServer

USER = 31337


async def test_flood_limit_with_retry_after(bot: Bot, server: TelegramServer) -> None:
    server.control.inject_fault("sendMessage", FaultKind.RETRY_AFTER, retry_after=7)
    with pytest.raises(TelegramRetryAfter) as caught:
        await bot.send_message(USER, "too fast")
    assert caught.value.retry_after == 7
    # One call only (times=1): the retry goes through.
    assert (await bot.send_message(USER, "later")).text == "later"
    failed, sent = server.control.calls(USER)
    assert (failed.ok, failed.error_code, sent.ok) == (False, 429, True)


async def test_blocked_by_the_user_only_for_that_chat(bot: Bot, server: TelegramServer) -> None:
    server.control.inject_fault("sendMessage", "blocked", chat_id=USER, times=None)
    for _ in range(2):
        with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
            await bot.send_message(USER, "hello?")
    assert (await bot.send_message(USER + 1, "others still work")).chat.id == USER + 1
    server.control.clear_faults()
    assert (await bot.send_message(USER, "unblocked")).text == "unblocked"


async def test_server_error(bot: Bot, server: TelegramServer) -> None:
    server.control.inject_fault("*", FaultKind.SERVER_ERROR, status=502)
    with pytest.raises(TelegramServerError):
        await bot.get_me()
    assert server.control.calls(method="getMe")[0].error_code == 502


async def test_delay_then_normal_answer(bot: Bot, server: TelegramServer) -> None:
    server.control.inject_fault("sendChatAction", FaultKind.DELAY, delay=0.3)
    started = time.monotonic()
    assert await bot.send_chat_action(USER, "typing") is True
    assert time.monotonic() - started >= 0.3
