"""The aiogram Bot, pointed at the configured Bot API, with every call counted."""

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

from .metrics import BotMetrics
from .settings import BotSettings


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
