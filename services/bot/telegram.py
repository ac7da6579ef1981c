"""The aiogram Bot, pointed at the configured Bot API, with every call counted, and the
command menu it publishes."""

from __future__ import annotations

from typing import Any

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.client.telegram import TelegramAPIServer
from aiogram.methods import Response, TelegramMethod
from aiogram.types import BotCommand

from .metrics import BotMetrics
from .settings import BotSettings
from .texts import CATALOGUES, FALLBACK, commands


class _CountCalls(BaseRequestMiddleware):
    def __init__(self, metrics: BotMetrics) -> None:
        self._metrics = metrics

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[Any],
        bot: Bot,
        method: TelegramMethod[Any],
    ) -> Response[Any]:
        result = "ok"
        try:
            return await make_request(bot, method)
        except Exception as error:
            # TelegramRetryAfter, TelegramForbiddenError, TelegramNetworkError, ...
            result = type(error).__name__
            raise
        finally:
            self._metrics.api_calls.labels(method.__api_method__, result).inc()


def create_bot(settings: BotSettings, metrics: BotMetrics) -> Bot:
    session = AiohttpSession(api=TelegramAPIServer.from_base(settings.api_url))
    session.middleware(_CountCalls(metrics))
    return Bot(settings.token.get_secret_value(), session=session)


async def publish_commands(bot: Bot) -> None:
    """The command menu, in every language of the texts."""
    for language in CATALOGUES:
        menu = [BotCommand(command=name, description=about) for name, about in commands(language)]
        # The fallback language's menu is the default for every language without its own.
        await bot.set_my_commands(menu, language_code=None if language == FALLBACK else language)
