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
from pydantic_core import from_json

from .metrics import BotMetrics, Outcome
from .processing import UpdateProcessor, update_type
from .settings import BotSettings
from .telegram import publish_commands

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# Telegram's updates nest a dozen levels (a reply's quoted message's entities); far deeper
# input is refused before validation, which would recurse through it.
MAX_DEPTH = 64
# update_id is stored as a BIGINT.
MAX_UPDATE_ID = 2**63 - 1
STATUS = {
    Outcome.HANDLED: 200,
    Outcome.DUPLICATE: 200,
    Outcome.THROTTLED: 200,
    Outcome.INVALID: 200,
    Outcome.BLOCKED: 200,
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
            # pydantic-core's JSON parser: the standard library's costs twice as much.
            data = from_json(await request.read())
            problem = _unprocessable(data)
            if problem is None:
                update = Update.model_validate(data, context={"bot": self._bot})
        except (ValueError, ValidationError, RecursionError):  # not JSON, or not an Update
            problem = "not a Telegram update"
        if problem is not None:
            # Input that can never be processed: 400, which Telegram does not redeliver.
            self._metrics.updates.labels("unknown", Outcome.REJECTED).inc()
            return web.Response(status=400, text=problem)
        kind = update_type(update)
        outcome = await self._processor.attempt(update)
        self._metrics.updates.labels(kind, outcome).inc()
        self._metrics.latency.labels(kind).observe(perf_counter() - started)
        return web.Response(status=STATUS[outcome])


def _unprocessable(data: object) -> str | None:
    """Why a JSON document can never be applied as an update, or None."""
    if not isinstance(data, dict):
        return "not a Telegram update"
    update_id = data.get("update_id")
    if not isinstance(update_id, int) or not 0 <= update_id <= MAX_UPDATE_ID:
        return "update_id is not an integer from 0 to 2^63-1"
    level: list[dict[str, object] | list[object]] = [data]
    for _ in range(MAX_DEPTH):
        level = [
            child
            for node in level
            for child in (node.values() if isinstance(node, dict) else node)
            if isinstance(child, dict | list)
        ]
        if not level:
            return None
    return f"nested deeper than {MAX_DEPTH} levels"


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
