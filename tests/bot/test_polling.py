"""Polling mode: the bot asks the local Bot API for updates (getUpdates) and confirms one only
after it was applied; what the user, the stand-in and the database see."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiogram import Bot, Router
from aiogram.filters import Command
from aiogram.types import Message
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from infra.stack import LocalStack
from services.bot.app import PROCESSOR_KEY, create_app, create_dispatcher
from services.bot.health import create_ops_app
from services.bot.metrics import BotMetrics
from services.bot.polling import Backoff, Poller
from services.bot.replies import Replies
from services.bot.settings import BotSettings, Mode
from services.bot.telegram import create_bot
from services.core.db import Database
from services.telegram_api import TelegramServer

from .conftest import (
    SECRET,
    TOKEN,
    assert_each_applied_once,
    bot_process,
    count,
    eventually,
    flaky_router,
    http_status,
)

USER = 6161


@dataclass
class PollingBot:
    url: str  # the health and metrics server
    metrics: BotMetrics
    server: TelegramServer
    poller: Poller
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.stopping = asyncio.Event()
        self.task = asyncio.create_task(self.poller.run(self.stopping))

    def updates(self, outcome: str, kind: str = "message") -> float:
        value = self.metrics.registry.get_sample_value(
            "bot_updates_total", {"type": kind, "outcome": outcome}
        )
        return value or 0.0

    def texts(self, chat_id: int) -> list[str]:
        calls = self.server.control.calls(chat_id, "sendMessage")
        return [str(call.params["text"]) for call in calls if call.ok]

    def pending(self) -> list[int]:
        """Update ids the stand-in holds: not yet confirmed by a getUpdates offset."""
        return [update.update_id for update in self.server.control.bot().updates.pending()]

    async def stop(self) -> None:
        """What SIGTERM does in the runner."""
        self.stopping.set()
        if self.task is not None:
            await self.task


StartPoller = Callable[..., Awaitable[PollingBot]]


@pytest.fixture
async def start_poller(server: TelegramServer, database: Database) -> AsyncIterator[StartPoller]:
    """Starts the bot as the runner does with BOT_MODE=polling: the app (health, metrics,
    outbox) on a free port, and the poller as a task. Backoff is short so retries are quick."""
    runners: list[web.AppRunner] = []
    bots: list[Bot] = []
    pollers: list[PollingBot] = []

    async def start(routers: Sequence[Router] = (), **overrides: Any) -> PollingBot:
        settings = BotSettings(
            token=TOKEN,
            api_url=server.url,
            webhook_port=0,
            webhook_secret=SECRET,
            mode=Mode.POLLING,
            polling_timeout=2,
            **overrides,
        )
        metrics = BotMetrics(database.metrics.registry)
        bot = create_bot(settings, metrics)
        bots.append(bot)
        dispatcher = create_dispatcher(settings, routers)
        app = create_app(settings, database, bot, metrics, dispatcher)
        runner = web.AppRunner(app)
        await runner.setup()  # the outbox loop; no webhook is served in polling mode
        runners.append(runner)
        ops = web.AppRunner(create_ops_app(database))
        await ops.setup()
        runners.append(ops)
        await web.TCPSite(ops, settings.metrics_host, 0).start()
        poller = Poller(
            bot,
            app[PROCESSOR_KEY],
            metrics,
            dispatcher.resolve_used_update_types(),
            settings.polling_timeout,
            Backoff(first=0.05, cap=0.5),
        )
        url = f"http://{settings.metrics_host}:{ops.addresses[0][1]}"
        pollers.append(PollingBot(url, metrics, server, poller))
        pollers[-1].start()
        return pollers[-1]

    yield start
    for poller in pollers:
        await poller.stop()
    for runner in runners:
        await runner.cleanup()
    for bot in bots:
        await bot.session.close()


async def test_start_by_polling_registers_the_user_once_and_greets(
    start_poller: StartPoller, server: TelegramServer, owner: asyncpg.Connection
) -> None:
    # A webhook left from webhook mode, unreachable, with an update it could not deliver.
    await server.control.set_webhook("http://127.0.0.1:9/telegram/webhook")
    server.control.send_text(USER, "/start", first_name="Ann")
    bot = await start_poller()
    await eventually(lambda: len(bot.texts(USER)) == 1)
    assert bot.texts(USER)[0].startswith("Hello, Ann!")
    assert server.control.bot().webhook is None
    server.control.send_text(USER, "/help")
    await eventually(lambda: len(bot.texts(USER)) == 2)
    assert await count(owner, "SELECT count(*) FROM users WHERE telegram_id = $1", USER) == 1
    assert await count(owner, "SELECT count(*) FROM processed_updates") == 2
    # Both confirmed by the next getUpdates once applied.
    await eventually(lambda: bot.pending() == [])
    assert len(server.control.calls(method="setMyCommands")) == 2
    # The health and metrics server answers as in webhook mode.
    async with aiohttp.ClientSession() as http, http.get(bot.url + "/metrics") as response:
        assert response.status == 200
        body = await response.text()
    handled = [
        sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
        if sample.name == "bot_updates_total" and sample.labels["outcome"] == "handled"
    ]
    assert handled == [2.0]


async def test_updates_queued_during_a_database_outage_are_applied_once_in_order_after_it(
    stack: LocalStack,
    start_poller: StartPoller,
    server: TelegramServer,
    database: Database,
    endpoints: dict[str, str],
) -> None:
    bot = await start_poller()
    await database.ping()  # a running bot has connected before (see test_webhook)
    users = [USER + n for n in range(3)]
    stack.stop_postgres()
    try:
        pushed = [server.control.send_text(user, "/start").update_id for user in users]
        # The first update is tried again and again; none is skipped or confirmed.
        await eventually(lambda: bot.updates("unavailable") >= 3, seconds=60)
        assert bot.pending() == pushed
        assert bot.updates("handled") == 0
    finally:
        stack.start_postgres()
    await eventually(lambda: all(len(bot.texts(user)) == 1 for user in users), seconds=60)
    answered = [call.chat_id for call in server.control.calls(method="sendMessage")]
    assert answered == users
    await eventually(lambda: bot.updates("handled") == len(users))
    await eventually(lambda: bot.pending() == [])
    await assert_each_applied_once(endpoints, len(users))


async def test_a_failing_handler_is_retried_and_applied_once(
    start_poller: StartPoller, server: TelegramServer, owner: asyncpg.Connection
) -> None:
    failures: list[str] = []
    bot = await start_poller([flaky_router(failures)])
    server.control.send_text(USER, "/flaky")
    server.control.send_text(USER, "/help")
    await eventually(lambda: len(bot.texts(USER)) == 2)
    assert failures == ["failed once"]
    await eventually(lambda: bot.updates("failed") == 1)
    await eventually(lambda: bot.updates("handled") == 2)
    assert bot.texts(USER)[0] == "five credits added"  # the retried update kept its place
    assert await owner.fetchval("SELECT credits FROM users WHERE telegram_id = $1", USER) == 5
    assert await count(owner, "SELECT count(*) FROM credit_changes") == 1


def _slow_router(entered: asyncio.Event, release: asyncio.Event) -> Router:
    router = Router(name="slow")

    @router.message(Command("slow"))
    async def slow(message: Message, replies: Replies) -> None:
        entered.set()
        await release.wait()
        replies.add(message.chat.id, "done at last")

    return router


async def test_stopping_finishes_the_update_in_hand_and_leaves_the_rest_for_next_time(
    start_poller: StartPoller, server: TelegramServer, owner: asyncpg.Connection
) -> None:
    entered, release = asyncio.Event(), asyncio.Event()
    bot = await start_poller([_slow_router(entered, release)])
    slow = server.control.send_text(USER, "/slow")
    await eventually(entered.is_set)
    later = server.control.send_text(USER, "/help")
    bot.stopping.set()
    release.set()
    await bot.stop()
    assert bot.texts(USER) == ["done at last"]
    assert await count(owner, "SELECT count(*) FROM processed_updates") == 1
    # Neither is confirmed yet: the stand-in (Telegram) keeps both.
    assert bot.pending() == [slow.update_id, later.update_id]
    # The next start serves the second; the first, applied already, is a duplicate.
    bot.start()
    await eventually(lambda: len(bot.texts(USER)) == 2)
    assert bot.texts(USER)[1].startswith("What I can do:")
    await eventually(lambda: bot.updates("duplicate") == 1)
    assert await count(owner, "SELECT count(*) FROM processed_updates") == 2


async def test_the_process_polls_answers_its_probes_and_stops_cleanly_on_sigterm(
    server: TelegramServer, endpoints: dict[str, str], owner: asyncpg.Connection, tmp_path: Path
) -> None:
    await server.control.set_webhook("http://127.0.0.1:9/telegram/webhook")  # left over
    # A long poll of 50 s: SIGTERM must not wait for it.
    polling = {"BOT_MODE": "polling", "BOT_POLLING_TIMEOUT": "50"}
    async with (
        bot_process(server, endpoints, tmp_path, **polling) as (child, url),
        aiohttp.ClientSession() as http,
    ):
        await eventually(lambda: server.control.bot().webhook is None)
        assert await http_status(http, url + "/health/ready") == 200
        server.control.send_text(USER, "/help")
        await eventually(lambda: len(server.control.calls(USER, "sendMessage")) == 1)
        # Confirmed by the next long poll, which is waiting when SIGTERM comes.
        await eventually(lambda: server.control.bot().updates.pending() == [])
        async with http.get(url + "/metrics") as response:
            metrics = await response.text()
        assert 'bot_updates_total{outcome="handled",type="message"} 1.0' in metrics
        child.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(child.wait(), timeout=20) == 0
        assert await http_status(http, url + "/health/live") == 0
        # Like Telegram, the stand-in still holds the abandoned long poll; a newer poll
        # ends it, so the stand-in need not wait it out when it stops.
        poll = f"{server.url}/bot{TOKEN}/getUpdates"
        async with http.get(poll, params={"timeout": "0"}) as response:
            assert response.status == 200
    assert await count(owner, "SELECT count(*) FROM processed_updates") == 1
