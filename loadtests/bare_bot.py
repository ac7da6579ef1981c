"""The floor `make bench-bot` measures the project's bot against: a bare aiogram 3 webhook bot
as aiogram's documentation writes one (SimpleRequestHandler, a Dispatcher, one router), no
database, answering every message with one sendMessage (/start with a greeting, anything else
with a fixed line), so it does per update what the project's bot does minus its own work.

Besides the webhook it serves /health/live (the benchmark waits on it) and /metrics with the
project bot's webhook latency histogram (same name and buckets, observed by an aiohttp
middleware: a few microseconds per update), so both bots' latency is read the same way.

    BOT_API_URL=http://127.0.0.1:27433 BOT_WEBHOOK_PORT=8081 BOT_WEBHOOK_SECRET=s \\
        python -m loadtests.bare_bot
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from time import perf_counter

from aiogram import Bot, Dispatcher, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.filters import CommandStart
from aiogram.types import Message
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest

from services.bot.metrics import LATENCY_BUCKETS
from services.telegram_api.settings import DEV_TOKEN

WEBHOOK_PATH = "/telegram/webhook"

router = Router(name="bare")


@router.message(CommandStart())
async def start(message: Message) -> None:
    await message.answer(f"Hello, {message.from_user.first_name if message.from_user else ''}!")


@router.message()
async def anything(message: Message) -> None:
    await message.answer("Send /start.")


def create_app(api_url: str, token: str, secret: str) -> web.Application:
    registry = CollectorRegistry()
    latency = Histogram(
        "bot_update_duration_seconds",
        "Time from receiving an update to answering the webhook",
        ["type"],
        buckets=LATENCY_BUCKETS,
        registry=registry,
    ).labels("message")

    @web.middleware
    async def timed(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        started = perf_counter()
        response = await handler(request)
        if request.path == WEBHOOK_PATH:
            latency.observe(perf_counter() - started)
        return response

    async def live(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    bot = Bot(token, session=AiohttpSession(api=TelegramAPIServer.from_base(api_url)))
    dispatcher = Dispatcher()
    dispatcher.include_router(router)
    app = web.Application(middlewares=[timed])
    # Answered after the update is handled, as the project's bot does (its reply is sent
    # before the webhook's response, so the latencies compare).
    SimpleRequestHandler(dispatcher, bot, handle_in_background=False, secret_token=secret).register(
        app, path=WEBHOOK_PATH
    )
    app.add_routes([web.get("/health/live", live), web.get("/metrics", metrics)])

    async def close(app: web.Application) -> None:
        await bot.session.close()

    app.on_cleanup.append(close)
    return app


def main() -> None:
    app = create_app(
        os.environ["BOT_API_URL"],
        os.environ.get("BOT_TOKEN", DEV_TOKEN),
        os.environ["BOT_WEBHOOK_SECRET"],
    )
    web.run_app(
        app,
        host="127.0.0.1",
        port=int(os.environ["BOT_WEBHOOK_PORT"]),
        access_log=None,
        print=None,
    )


if __name__ == "__main__":
    main()
