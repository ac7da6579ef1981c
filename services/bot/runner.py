"""The process lifecycle: open the pool and the Bot API session, serve the webhook (and the
outbox's delivery loop, see app.py), register it, and on SIGTERM stop taking updates, finish
those in flight and the outbox batch in hand, close everything.

Health and metrics have a server of their own on BOT_METRICS_HOST:PORT. In polling mode
(BOT_MODE=polling) no webhook is served or registered: the bot asks for updates (polling.py);
health and metrics answer, and the outbox is delivered."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiohttp import web

from services.core.db import Database
from services.core.settings import DatabaseSettings

from .app import DISPATCHER_KEY, PROCESSOR_KEY, create_app
from .health import create_ops_app
from .metrics import BotMetrics
from .polling import Poller
from .settings import BotSettings, Mode
from .telegram import create_bot
from .webhook import register_webhook

log = logging.getLogger(__name__)

# Seconds between attempts to register the webhook while the Bot API is unreachable.
REGISTER_RETRY_SECONDS = 5.0


async def run(settings: BotSettings) -> None:
    database = Database(DatabaseSettings())
    metrics = BotMetrics(database.metrics.registry)
    bot = create_bot(settings, metrics)
    app = create_app(settings, database, bot, metrics)
    # aiohttp's graceful shutdown: cleanup() closes the listening socket at once, then waits
    # up to shutdown_timeout for the handlers in flight (each one update's transaction).
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=settings.shutdown_timeout)
    ops = web.AppRunner(create_ops_app(database), access_log=None)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    try:
        await runner.setup()  # starts the outbox loop, in both modes
        await ops.setup()
        await web.TCPSite(ops, settings.metrics_host, settings.metrics_port).start()
        log.info("health and metrics on %s:%s", settings.metrics_host, settings.metrics_port)
        # Everything built so far (aiogram's models: most of the heap) lives as long as the
        # process; frozen, the collector stops walking it on every full collection.
        gc.freeze()
        allowed = app[DISPATCHER_KEY].resolve_used_update_types()
        if settings.mode is Mode.POLLING:
            poller = Poller(bot, app[PROCESSOR_KEY], metrics, allowed, settings.polling_timeout)
            await _poll(poller, stopping, settings.shutdown_timeout)
        else:
            await web.TCPSite(runner, settings.webhook_host, settings.webhook_port).start()
            log.info("bot webhook listening on %s", settings.webhook_url)
            await _serve_webhook(bot, settings, allowed, stopping)
        await runner.cleanup()
        await ops.cleanup()
    finally:
        await bot.session.close()
        await database.dispose()
    log.info("stopped")


async def _serve_webhook(
    bot: Bot, settings: BotSettings, allowed: list[str], stopping: asyncio.Event
) -> None:
    registration = None
    if settings.set_webhook:
        registration = asyncio.create_task(_register(bot, settings, allowed))
    await stopping.wait()
    log.info("stopping: no new updates, finishing those in flight")
    if registration is not None:
        registration.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await registration


async def _poll(poller: Poller, stopping: asyncio.Event, grace: float) -> None:
    polling = asyncio.create_task(poller.run(stopping))
    stopped = asyncio.create_task(stopping.wait())
    # The poller ends on its own only by a bug: its exception then ends the process.
    await asyncio.wait((polling, stopped), return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if stopping.is_set():
        log.info("stopping: no new updates, finishing the one in hand")
    try:
        await asyncio.wait_for(polling, grace)
    except TimeoutError:
        log.warning("the update in hand was abandoned after %.0f s; it comes again", grace)


async def _register(bot: Bot, settings: BotSettings, allowed: list[str]) -> None:
    """Registers the webhook, retrying while the Bot API cannot be reached: the server is
    already up (liveness answers), and Telegram keeps the updates until then."""
    while True:
        try:
            await register_webhook(bot, settings, allowed)
        except TelegramAPIError as error:
            log.warning("setWebhook failed (%s); retrying", error)
            await asyncio.sleep(REGISTER_RETRY_SECONDS)
            continue
        log.info("webhook registered at %s", settings.api_url)
        return
