"""The app factory: the webhook route and the outbox's delivery loop over one Database and
one Bot, both owned by the caller (the runner, or a test). Health and metrics are another app
(health.py) on another port: the webhook's port is published for Telegram, theirs is not."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from aiogram import Bot, Dispatcher, Router
from aiogram.filters import Command
from aiogram.types import Message
from aiohttp import web

from services.core.db import Database
from services.core.schedule import Clock, system_clock

from . import health, support
from .handlers import create_router
from .metrics import BotMetrics
from .outbox import OutboxLimits, OutboxWorker
from .processing import UpdateProcessor
from .settings import BotSettings
from .throttle import Throttle
from .webhook import WebhookHandler

DISPATCHER_KEY = web.AppKey("dispatcher", Dispatcher)
PROCESSOR_KEY = web.AppKey("processor", UpdateProcessor)


def create_dispatcher(
    settings: BotSettings, routers: Sequence[Router] = (), clock: Clock = system_clock
) -> Dispatcher:
    """The handlers; tests put routers of their own first, and may set the clock."""
    # No finite-state machine: a conversation's state lives in the database (tickets,
    # bookings), not in a process's memory that a restart or a second process would lose.
    dispatcher = Dispatcher(disable_fsm=True)
    dispatcher.include_routers(*routers, create_router(settings, clock))
    _inline_sync_filters(dispatcher)
    return dispatcher


def _inline_sync_filters(router: Router) -> None:
    """aiogram runs a filter that is not a coroutine function (every F expression, plain
    functions) through asyncio.to_thread: a thread pool hand-off per filter per update, about
    a third of the bot's dispatch CPU for a text that passes a dozen filters. The bot's filters
    only look at the update in memory, so they are called in the event loop instead."""
    for observer in router.observers.values():
        for handler in observer.handlers:
            for event_filter in handler.filters or ():
                if isinstance(event_filter.callback, Command):
                    event_filter.callback = _prefixed(event_filter.callback)
                elif not event_filter.awaitable:
                    event_filter.callback = _awaitable(event_filter.callback)
                    event_filter.awaitable = True
    for sub_router in router.sub_routers:
        _inline_sync_filters(sub_router)


def _prefixed(command: Command) -> Callable[..., Awaitable[Any]]:
    """The command filter, answering at once for a text whose first word does not start with
    its prefix (as Command.extract_command reads it): a plain text meets every command of
    every router, and aiogram parses it as a command for each one."""
    prefixes = command.prefix

    async def check(message: Message, *args: Any, **kwargs: Any) -> Any:
        text = (message.text or message.caption) if isinstance(message, Message) else None
        first = text.lstrip()[:1] if text else ""
        if not first or first not in prefixes:
            return False
        return await command(message, *args, **kwargs)

    return check


def _awaitable(check: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    async def call(*args: Any, **kwargs: Any) -> Any:
        return check(*args, **kwargs)

    return call


def create_app(
    settings: BotSettings,
    database: Database,
    bot: Bot,
    metrics: BotMetrics,
    dispatcher: Dispatcher | None = None,
) -> web.Application:
    dispatcher = dispatcher or create_dispatcher(settings)
    throttle = Throttle(settings.throttle_per_minute, settings.throttle_burst)
    app = web.Application()
    worker = None
    if settings.outbox_delivery:
        tasks = support.outbox_tasks(settings, database, bot)
        worker = OutboxWorker(database, bot, metrics, outbox_limits(settings), tasks)
        app.cleanup_ctx.append(_delivering(worker))
    processor = UpdateProcessor(
        database,
        dispatcher,
        bot,
        throttle,
        worker.wake if worker else lambda: None,
        reply_wait=settings.reply_wait_seconds,
        api_timeout=settings.api_timeout_seconds,
    )
    # After the updates in flight: their replies handed to the outbox settle first.
    app.on_cleanup.append(lambda _: processor.sender.settled())
    webhook = WebhookHandler(settings.webhook_secret.get_secret_value(), bot, processor, metrics)
    app[DISPATCHER_KEY] = dispatcher
    app[PROCESSOR_KEY] = processor
    app.add_routes([web.post(settings.webhook_path, webhook.handle)])
    app.on_response_prepare.append(health.plain_server_header)
    return app


def outbox_limits(settings: BotSettings) -> OutboxLimits:
    return OutboxLimits(
        per_second=settings.outbox_per_second,
        chat_interval=settings.outbox_chat_interval,
        poll_seconds=settings.outbox_poll_seconds,
    )


def _delivering(worker: OutboxWorker) -> Callable[[web.Application], AsyncIterator[None]]:
    async def delivering(app: web.Application) -> AsyncIterator[None]:
        """Delivers the outbox while the app runs. aiohttp cleans up after the updates in
        flight have finished, so their messages are queued before the loop stops; the batch
        in hand is finished then."""
        stopping = asyncio.Event()
        task = asyncio.create_task(worker.run(stopping))
        yield
        stopping.set()
        await task

    return delivering
