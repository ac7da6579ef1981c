"""`python -m services.bot` as the stack runs it: it registers its webhook, answers its
probes and metrics, and on SIGTERM finishes the update in flight and exits cleanly."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from services.telegram_api import TelegramServer

from .conftest import bot_process, count, eventually, http_status

USER = 6161
STARTUP_SECONDS = 120.0


@pytest.fixture
async def process(
    server: TelegramServer, endpoints: dict[str, str], owner: asyncpg.Connection, tmp_path: Path
) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    async with bot_process(server, endpoints, tmp_path) as running:
        yield running


async def test_runs_registers_and_stops_cleanly_on_sigterm(
    process: tuple[asyncio.subprocess.Process, str],
    server: TelegramServer,
    owner: asyncpg.Connection,
) -> None:
    child, url = process
    async with aiohttp.ClientSession() as http:

        async def live() -> bool:
            return await http_status(http, url + "/health/live") == 200

        # The process imports its libraries first: over 20 s on a loaded 2-core machine.
        await eventually(live, STARTUP_SECONDS)
        assert await http_status(http, url + "/health/ready") == 200
        await eventually(lambda: server.control.bot().webhook is not None)

        server.control.send_text(USER, "/help")
        await eventually(lambda: len(server.control.calls(USER, "sendMessage")) == 1)
        handled = 'bot_updates_total{outcome="handled",type="message"} 1.0'
        for _ in range(100):  # counted once the webhook answers, just after the reply
            async with http.get(url + "/metrics") as response:
                metrics = await response.text()
            if handled in metrics:
                break
            await asyncio.sleep(0.05)
        assert handled in metrics
        assert 'bot_telegram_api_calls_total{method="sendMessage",result="ok"} 1.0' in metrics
        assert "db_queries_total" in metrics

        # A message another service queued is delivered by the running bot.
        await owner.execute(
            "INSERT INTO outbox (chat_id, method, payload) VALUES ($1, 'sendMessage', $2)",
            USER,
            json.dumps({"chat_id": USER, "text": "a reply from staff"}),
        )
        await eventually(lambda: len(server.control.calls(USER, "sendMessage")) == 2)
        assert server.control.calls(USER, "sendMessage")[1].params["text"] == "a reply from staff"

        # An update in flight when SIGTERM arrives: committed, its reply on the way.
        server.control.inject_fault("sendMessage", "delay", delay=1.5)
        server.control.send_text(USER, "/start")
        in_log = "SELECT count(*) FROM conversation_messages WHERE direction = 'in'"
        for _ in range(200):
            if await count(owner, in_log) == 2:
                break
            await asyncio.sleep(0.05)
        child.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(child.wait(), timeout=20) == 0
        replies = server.control.calls(USER, "sendMessage")
        assert [call.ok for call in replies] == [True, True, True]
        # The webhook answered 200 before the process went away: nothing to redeliver.
        webhook = server.control.bot().webhook
        assert webhook is not None
        assert webhook.config.last_error_message is None
        assert server.control.bot().updates.pending() == []
        assert await http_status(http, url + "/health/live") == 0  # no longer listening
