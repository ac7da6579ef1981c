"""The control API over HTTP, as load tests and tools use it, and the service process."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramForbiddenError
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, LabeledPrice

from services.telegram_api import TelegramServer

from .conftest import OTHER_TOKEN, TOKEN

REPO = Path(__file__).resolve().parents[2]
USER = 2024


@pytest.fixture
async def http(server: TelegramServer) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=server.url) as session:
        yield session


async def control(
    http: aiohttp.ClientSession, verb: str, path: str, **kwargs: Any
) -> tuple[int, dict[str, Any]]:
    async with http.request(verb, f"/__control/{path}", **kwargs) as response:
        return response.status, await response.json()


async def test_pushed_update_reaches_the_bot_and_its_calls_are_listed(
    bot: Bot, http: aiohttp.ClientSession
) -> None:
    update = {
        "message": {
            "message_id": 1,
            "date": 1_700_000_000,
            "chat": {"id": USER, "type": "private", "first_name": "Ann"},
            "from": {"id": USER, "is_bot": False, "first_name": "Ann"},
            "text": "/start",
        }
    }
    status, body = await control(http, "POST", "updates", json=update)
    assert status == 200

    received = await bot.get_updates()
    assert received[0].update_id == body["result"]["update_id"]  # assigned when missing
    assert received[0].message is not None and received[0].message.text == "/start"
    await bot.send_message(USER, "welcome")
    await bot.send_message(USER + 1, "someone else")

    status, body = await control(http, "GET", "calls", params={"chat_id": str(USER)})
    assert status == 200
    assert [(c["method"], c["params"]) for c in body["result"]] == [
        ("sendMessage", {"chat_id": USER, "text": "welcome"})
    ]
    assert body["result"][0]["result"]["message_id"] == 2


async def test_user_actions_over_http(bot: Bot, http: aiohttp.ClientSession) -> None:
    status, body = await control(http, "POST", "messages", json={"user_id": USER, "text": "hi"})
    assert status == 200 and body["result"]["message"]["text"] == "hi"
    go = InlineKeyboardButton(text="Go", callback_data="go")
    menu = await bot.send_message(
        USER, "menu", reply_markup=InlineKeyboardMarkup(inline_keyboard=[[go]])
    )
    status, body = await control(
        http, "POST", "buttons", json={"chat_id": USER, "message_id": menu.message_id, "data": "go"}
    )
    assert status == 200 and body["result"]["callback_query"]["data"] == "go"
    status, body = await control(
        http, "POST", "buttons", json={"chat_id": USER, "message_id": menu.message_id, "data": "x"}
    )
    assert status == 400 and "no button" in body["description"]


async def test_faults_over_http(bot: Bot, http: aiohttp.ClientSession) -> None:
    fault = {"method": "sendMessage", "kind": "blocked", "chat_id": USER, "times": None}
    assert (await control(http, "POST", "faults", json=fault))[0] == 200
    with pytest.raises(TelegramForbiddenError):
        await bot.send_message(USER, "hello")
    assert (await control(http, "DELETE", "faults"))[0] == 200
    assert (await bot.send_message(USER, "hello")).text == "hello"


async def test_bots_are_separate_and_chosen_by_token(
    server: TelegramServer, http: aiohttp.ClientSession
) -> None:
    await control(
        http, "POST", "messages", params={"token": OTHER_TOKEN}, json={"user_id": 1, "text": "x"}
    )
    assert server.control.bot(OTHER_TOKEN).updates.pending() != []
    assert server.control.bot(TOKEN).updates.pending() == []
    status, body = await control(http, "GET", "calls", params={"token": "1:nope"})
    assert status == 400 and body["description"] == "Bad Request: unknown bot token"


async def test_invalid_calls_are_listed(http: aiohttp.ClientSession) -> None:
    async with http.get(f"/bot{TOKEN}/noSuchMethod"):
        pass
    status, body = await control(http, "GET", "violations")
    assert status == 200 and body["result"] == [
        "bot 1000000001: noSuchMethod: Not Found: method not found"
    ]


@pytest.mark.slow  # a Python process of its own: seconds of imports
async def test_service_process_serves_and_stops_on_sigterm() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = os.environ | {"TELEGRAM_API_PORT": str(port), "TELEGRAM_API_TOKENS": TOKEN}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.telegram_api", cwd=REPO, env=env
    )
    try:
        # Importing aiogram alone takes seconds on a busy machine: wait for the port to
        # answer (or the process to end), not for a fixed time.
        deadline = asyncio.get_running_loop().time() + 120
        async with aiohttp.ClientSession() as session:
            while True:
                try:
                    async with session.get(f"http://127.0.0.1:{port}/bot{TOKEN}/getMe") as response:
                        assert (await response.json())["result"]["id"] == 1000000001
                        break
                except aiohttp.ClientConnectionError:
                    if process.returncode is not None:
                        pytest.fail(f"the service exited with {process.returncode}")
                    if asyncio.get_running_loop().time() > deadline:
                        pytest.fail("the service did not start")
                    await asyncio.sleep(0.05)
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0


async def test_web_chat_page_and_the_chat_it_shows(bot: Bot, http: aiohttp.ClientSession) -> None:
    async with http.get("/chat") as response:
        assert response.status == 200 and response.content_type == "text/html"
        assert "/__control/" in await response.text()
    await control(http, "POST", "messages", json={"user_id": USER, "text": "buy credits"})
    invoice = await bot.send_invoice(
        USER, "Credits", "10 credits", "credits:10", "XTR", [LabeledPrice(label="x", amount=10)]
    )
    await bot.delete_message(USER, invoice.message_id)
    await bot.send_message(USER, "changed my mind")

    status, body = await control(http, "GET", f"chats/{USER}/messages")
    assert status == 200
    assert [(m["message_id"], m.get("text")) for m in body["result"]] == [
        (1, "buy credits"),
        (3, "changed my mind"),
    ]


async def test_update_ids_telegram_never_sends_are_refused_and_delivery_goes_on(
    bot: Bot, http: aiohttp.ClientSession
) -> None:
    message = {
        "message_id": 1,
        "date": 1_700_000_000,
        "chat": {"id": USER, "type": "private", "first_name": "Ann"},
        "from": {"id": USER, "is_bot": False, "first_name": "Ann"},
        "text": "hi",
    }
    for bad in (2**63 - 1, 2**53, 0, -5, "12", True):
        status, body = await control(http, "POST", "updates", json={"update_id": bad, **message})
        assert status == 400, bad
        assert body["description"] == "Bad Request: update_id must be an integer from 1 to " + str(
            2**53 - 1
        )
    status, body = await control(http, "POST", "updates", json={"message": message})
    assert status == 200 and body["result"]["update_id"] < 2**53
    assert [u.update_id for u in await bot.get_updates()] == [body["result"]["update_id"]]


async def test_oversized_control_bodies_are_refused(http: aiohttp.ClientSession) -> None:
    async def streamed() -> AsyncIterator[bytes]:
        for _ in range(20):  # no Content-Length: refused once past the limit
            yield b" " * (1024 * 1024)

    announced = await control(http, "POST", "updates", data=b" " * (2 * 1024 * 1024))
    chunked = await control(http, "POST", "updates", data=streamed())
    for status, body in (announced, chunked):
        assert status == 413
        assert body["description"].startswith("Request Entity Too Large")


async def test_reset_over_http_keeps_the_webhook_unless_asked_to_drop_it(
    server: TelegramServer, http: aiohttp.ClientSession
) -> None:
    await server.control.set_webhook("http://127.0.0.1:9/hook", "s3cret")
    status, _ = await control(http, "POST", "reset")
    assert status == 200
    webhook = server.control.bot().webhook
    assert webhook is not None and webhook.config.url == "http://127.0.0.1:9/hook"
    status, _ = await control(http, "POST", "reset?webhooks=drop")
    assert status == 200 and server.control.bot().webhook is None
