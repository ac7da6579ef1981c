"""A real aiogram Bot talking over HTTP to the session's local Bot API (`telegram` and
`server` in tests/conftest.py: strict mode, compressed retry timing, a free port). No
database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

from services.telegram_api import TelegramServer
from tests.conftest import OTHER_TOKEN, TOKEN

__all__ = ["OTHER_TOKEN", "TOKEN"]


@pytest.fixture(scope="session")
async def session_bot(telegram: TelegramServer) -> AsyncIterator[Bot]:
    session = AiohttpSession(api=TelegramAPIServer.from_base(telegram.url))
    async with Bot(TOKEN, session=session) as client:
        yield client


@pytest.fixture
def bot(server: TelegramServer, session_bot: Bot) -> Bot:
    """The aiogram Bot, against a freshly reset server."""
    return session_bot
