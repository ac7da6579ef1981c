"""The webhook endpoint Telegram POSTs updates to, and its registration with the Bot API.

Status codes are what Telegram acts on: 2xx is accepted (never sent again), anything else is
redelivered later. So 200 means applied or already applied, 5xx means nothing was written
and a retry may work, and 401/400 mean the request is not Telegram's or not an update.
"""

from __future__ import annotations

import hmac
from time import perf_counter

from aiogram import Bot
from aiogram.types import Update
from aiohttp import web
from pydantic import ValidationError

from .metrics import BotMetrics, Outcome
from .processing import UpdateProcessor, update_type
from .settings import BotSettings
from .telegram import publish_commands

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
STATUS = {
    Outcome.HANDLED: 200,
    Outcome.DUPLICATE: 200,
    Outcome.THROTTLED: 200,
    Outcome.INVALID: 200,
    Outcome.FAILED: 500,
    Outcome.UNAVAILABLE: 503,
}


class WebhookHandler:
    def __init__(
        self, secret: str, bot: Bot, processor: UpdateProcessor, metrics: BotMetrics
    ) -> None:
        self._secret = secret.encode()
        self._bot = bot
        self._processor = processor
        self._metrics = metrics

    async def handle(self, request: web.Request) -> web.Response:
        started = perf_counter()
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, self._secret):
            self._metrics.updates.labels("unknown", Outcome.REJECTED).inc()
            return web.Response(status=401, text="wrong secret token")
        try:
            update = Update.model_validate(await request.json(), context={"bot": self._bot})
        except (ValueError, ValidationError):  # not JSON, or JSON but not an Update
            self._metrics.updates.labels("unknown", Outcome.REJECTED).inc()
            return web.Response(status=400, text="not a Telegram update")
        kind = update_type(update)
        outcome = await self._processor.attempt(update)
        self._metrics.updates.labels(kind, outcome).inc()
        self._metrics.latency.labels(kind).observe(perf_counter() - started)
        return web.Response(status=STATUS[outcome])


async def register_webhook(bot: Bot, settings: BotSettings, allowed_updates: list[str]) -> None:
    """Points the Bot API at this server and publishes the command menu. Pending updates are
    kept: whatever arrived while the bot was down is delivered now."""
    await bot.set_webhook(
        settings.webhook_url,
        secret_token=settings.webhook_secret.get_secret_value(),
        allowed_updates=allowed_updates,
        drop_pending_updates=False,
    )
    await publish_commands(bot)
