"""The aiogram Bot, pointed at the configured Bot API, with every call counted, and the
command menu it publishes."""

from __future__ import annotations

from typing import Any

import aiohttp
from aiogram import Bot
from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.methods import Response, TelegramMethod
from aiogram.types import BotCommand

from .bot_api_session import JsonSession
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


class _KeepResponseModels(BaseRequestMiddleware):
    """aiogram checks each answer with a generic model, `Response[<result type>]`, which
    pydantic caches only while something else holds it: without this, the model was built
    again for most calls (7% of the bot's CPU under load). One per method the bot uses."""

    def __init__(self) -> None:
        self._held: dict[type[TelegramMethod[Any]], object] = {}

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[Any],
        bot: Bot,
        method: TelegramMethod[Any],
    ) -> Response[Any]:
        if type(method) not in self._held:
            self._held[type(method)] = Response[method.__returning__]  # type: ignore[name-defined]
        return await make_request(bot, method)


def create_bot(settings: BotSettings, metrics: BotMetrics) -> Bot:
    session = JsonSession(
        TelegramAPIServer.from_base(settings.api_url), timeout=settings.api_timeout_seconds
    )
    session.middleware(_KeepResponseModels())
    session.middleware(_CountCalls(metrics))
    return Bot(settings.token.get_secret_value(), session=session)


async def publish_commands(bot: Bot) -> None:
    """The command menu, in every language of the texts."""
    for language in CATALOGUES:
        menu = [BotCommand(command=name, description=about) for name, about in commands(language)]
        # The fallback language's menu is the default for every language without its own.
        await bot.set_my_commands(menu, language_code=None if language == FALLBACK else language)


def not_taken(error: Exception) -> bool:
    """Telegram certainly did not act on the call, so making it again cannot make a
    duplicate: it answered 429 or 5xx (Telegram's word that nothing was done), or no
    connection to it was made (refused, DNS, connect timeout)."""
    if isinstance(error, TelegramRetryAfter | TelegramServerError):
        return True
    unreached = aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError
    return isinstance(error, TelegramNetworkError) and isinstance(error.__cause__, unreached)


def in_doubt(error: Exception) -> bool:
    """The request went out and no answer came (a timeout, the connection lost on the way,
    an answer that is not the Bot API's, anything unforeseen): Telegram may have acted on
    it. It has no idempotency key, so making it again could send it twice: never made
    again."""
    network = isinstance(error, TelegramNetworkError) and not not_taken(error)
    return network or not isinstance(error, TelegramAPIError)
