"""The app factory: the webhook, health and metrics routes over one Database and one Bot,
both owned by the caller (the runner, or a test)."""

from __future__ import annotations

from collections.abc import Sequence

from aiogram import Bot, Dispatcher, Router
from aiohttp import web

from services.core.db import Database

from . import health
from .handlers import create_router
from .metrics import BotMetrics
from .processing import UpdateProcessor
from .settings import BotSettings
from .throttle import Throttle
from .webhook import WebhookHandler

DISPATCHER_KEY = web.AppKey("dispatcher", Dispatcher)


def create_dispatcher(routers: Sequence[Router] | None = None) -> Dispatcher:
    """The handlers; tests put routers of their own first."""
    dispatcher = Dispatcher()
    dispatcher.include_routers(*(routers if routers is not None else [create_router()]))
    return dispatcher


def create_app(
    settings: BotSettings,
    database: Database,
    bot: Bot,
    metrics: BotMetrics,
    dispatcher: Dispatcher | None = None,
) -> web.Application:
    dispatcher = dispatcher or create_dispatcher()
    throttle = Throttle(settings.throttle_per_minute, settings.throttle_burst)
    processor = UpdateProcessor(database, dispatcher, bot, throttle)
    webhook = WebhookHandler(settings.webhook_secret.get_secret_value(), bot, processor, metrics)
    app = web.Application()
    app[DISPATCHER_KEY] = dispatcher
    app.add_routes([web.post(settings.webhook_path, webhook.handle), *health.routes(database)])
    return app
