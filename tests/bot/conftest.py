"""Bot fixtures, end to end over real HTTP: the local Bot API (in-process, strict) delivers
updates to the bot's webhook server on a free port, whose Database goes through the test
stack's PgBouncer to PostgreSQL, and whose replies go back to the local Bot API."""

from __future__ import annotations

import asyncio
import inspect
import os
import shlex
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiogram import Bot, Router
from aiogram.filters import Command
from aiogram.types import Message
from aiohttp import web

from services.bot.app import create_app, create_dispatcher
from services.bot.health import create_ops_app
from services.bot.metrics import BotMetrics
from services.bot.replies import Replies
from services.bot.settings import BotSettings
from services.bot.telegram import create_bot
from services.bot.webhook import register_webhook
from services.core.db import Database, UnitOfWork
from services.core.schedule import Clock, system_clock
from services.telegram_api import TelegramServer
from services.telegram_api.bot import CallRecord
from tests.conftest import TOKEN

__all__ = ["TOKEN"]  # the bot's token in the local Bot API (`telegram`, tests/conftest.py)

REPO = Path(__file__).resolve().parents[2]
SECRET = "bot-test-secret"
# Seconds a test waits for something the stand-in delivers asynchronously.
WAIT_SECONDS = 30.0


async def eventually(
    check: Callable[[], bool | Awaitable[bool]], seconds: float = WAIT_SECONDS
) -> None:
    """Waits until check() (or what it returns, awaited) is true; fails the test after
    `seconds`."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        outcome = check()
        if inspect.isawaitable(outcome):
            outcome = await outcome
        if outcome:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not true within {seconds} s")
        await asyncio.sleep(0.05)


@dataclass
class RunningBot:
    url: str  # the webhook server
    ops_url: str  # health and metrics
    settings: BotSettings
    metrics: BotMetrics
    server: TelegramServer

    def updates(self, outcome: str, kind: str = "message") -> float:
        value = self.metrics.registry.get_sample_value(
            "bot_updates_total", {"type": kind, "outcome": outcome}
        )
        return value or 0.0

    def sent(self, chat_id: int) -> list[CallRecord]:
        return self.server.control.calls(chat_id, "sendMessage")

    def texts(self, chat_id: int) -> list[str]:
        return [str(call.params["text"]) for call in self.sent(chat_id) if call.ok]


StartBot = Callable[..., Awaitable[RunningBot]]


@pytest.fixture
async def start_bot(server: TelegramServer, database: Database) -> AsyncIterator[StartBot]:
    """Starts the bot's webhook server on a free port and registers it with the local Bot API
    (setWebhook and setMyCommands, validated in strict mode). Options: routers put before the
    bot's own, the clock the bookings read (the system's by default), and settings
    overrides."""
    runners: list[web.AppRunner] = []
    bots: list[Bot] = []

    async def start(
        routers: Sequence[Router] = (), clock: Clock = system_clock, **overrides: Any
    ) -> RunningBot:
        settings = BotSettings(
            token=TOKEN, api_url=server.url, webhook_port=0, webhook_secret=SECRET, **overrides
        )
        metrics = BotMetrics(database.metrics.registry)
        bot = create_bot(settings, metrics)
        bots.append(bot)
        dispatcher = create_dispatcher(settings, routers, clock)
        runner = web.AppRunner(create_app(settings, database, bot, metrics, dispatcher))
        await runner.setup()
        runners.append(runner)
        await web.TCPSite(runner, settings.webhook_host, 0).start()
        ops = web.AppRunner(create_ops_app(database))
        await ops.setup()
        runners.append(ops)
        await web.TCPSite(ops, settings.metrics_host, 0).start()
        port = int(runner.addresses[0][1])
        settings = settings.model_copy(update={"webhook_port": port})
        await register_webhook(bot, settings, dispatcher.resolve_used_update_types())
        ops_url = f"http://{settings.metrics_host}:{ops.addresses[0][1]}"
        return RunningBot(
            f"http://{settings.webhook_host}:{port}", ops_url, settings, metrics, server
        )

    yield start
    for runner in runners:
        await runner.cleanup()
    for bot in bots:
        await bot.session.close()


async def count(owner: asyncpg.Connection, query: str, *args: object) -> int:
    return int(await owner.fetchval(query, *args))


async def assert_each_applied_once(endpoints: dict[str, str], users: int) -> None:
    """After an outage: each of `users` users' one /start made one user, one processed
    update and a message each way. A new connection: `owner`'s ended with the server."""
    after = await asyncpg.connect(endpoints["postgres_dsn"])
    try:
        assert await count(after, "SELECT count(*) FROM users") == users
        assert await count(after, "SELECT count(*) FROM processed_updates") == users
        assert await count(after, "SELECT count(*) FROM conversation_messages") == 2 * users
    finally:
        await after.close()


def flaky_router(failures: list[str]) -> Router:
    """/flaky adds credits and answers, then fails the first time: a handler bug that
    Telegram's redelivery (or the poller's retry) gets past."""
    router = Router(name="flaky")

    @router.message(Command("flaky"))
    async def flaky(message: Message, uow: UnitOfWork, user_id: int, replies: Replies) -> None:
        await uow.billing.change_credits(user_id, 5, "test")
        replies.add(message.chat.id, "five credits added")
        if not failures:
            failures.append("failed once")
            raise RuntimeError("handler bug")

    return router


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _stack_env(endpoints: dict[str, str]) -> dict[str, str]:
    """The DB_* (and other) variables the stack hands its services, from .stack/env."""
    env = {}
    for line in Path(endpoints["env_file"]).read_text().splitlines():
        key, _, value = line.partition("=")
        env[key] = shlex.split(value)[0] if value else ""
    return env


async def http_status(http: aiohttp.ClientSession, url: str) -> int:
    """The status of a GET, or 0 when nothing listens."""
    try:
        async with http.get(url) as response:
            return response.status
    except aiohttp.ClientConnectionError:
        return 0


@asynccontextmanager
async def bot_process(
    server: TelegramServer, endpoints: dict[str, str], log_dir: Path, **env: str
) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """`python -m services.bot` as the stack runs it, against the in-process stand-in, on
    free ports (`env` adds or overrides BOT_ variables); killed if still running at the end.
    Yields the process and the base URL of its health and metrics server; its output is in
    log_dir/bot.log."""
    port, ops_port = _free_port(), _free_port()
    variables = {
        **os.environ,
        **_stack_env(endpoints),
        "BOT_TOKEN": TOKEN,
        "BOT_API_URL": server.url,
        "BOT_WEBHOOK_HOST": "127.0.0.1",
        "BOT_WEBHOOK_PORT": str(port),
        "BOT_METRICS_PORT": str(ops_port),
        "BOT_WEBHOOK_SECRET": SECRET,
        **env,
    }
    with (log_dir / "bot.log").open("wb") as log:
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.bot", cwd=REPO, env=variables, stdout=log, stderr=log
        )
    try:
        yield child, f"http://127.0.0.1:{ops_port}"
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
