"""One local Bot API for the session (strict mode, compressed retry timing, a free port),
reset before every test, and a real aiogram Bot talking to it over HTTP. No database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

from services.telegram_api import TelegramAPISettings, TelegramServer

TOKEN = "1000000001:test-token"
OTHER_TOKEN = "1000000002:other-test-token"


@pytest.fixture(scope="session")
async def telegram() -> AsyncIterator[TelegramServer]:
    telegram = TelegramServer(
        TelegramAPISettings(port=0, tokens=(TOKEN, OTHER_TOKEN), strict=True, time_scale=0.001)
    )
    await telegram.start()
    yield telegram
    await telegram.stop()


@pytest.fixture
async def server(telegram: TelegramServer) -> AsyncIterator[TelegramServer]:
    await telegram.reset()
    yield telegram
    telegram.check()  # strict mode: an invalid call the test did not expect fails it


@pytest.fixture(scope="session")
async def session_bot(telegram: TelegramServer) -> AsyncIterator[Bot]:
    session = AiohttpSession(api=TelegramAPIServer.from_base(telegram.url))
    async with Bot(TOKEN, session=session) as client:
        yield client


@pytest.fixture
def bot(server: TelegramServer, session_bot: Bot) -> Bot:
    """The aiogram Bot, against a freshly reset server."""
    return session_bot
