"""Webhook delivery to a receiver in the test, as Telegram does it: secret header, per-chat
order under concurrency, retries until 2xx, and a method in the response executed."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiogram import Bot, Dispatcher
from aiogram.methods import SendMessage
from aiogram.types import Message
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web

from services.telegram_api import TelegramServer

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def eventually(check: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


class Receiver:
    """A webhook endpoint whose behaviour each test sets; records what it was sent."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.respond: Handler = self._accept
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _accept(self, request: web.Request) -> web.StreamResponse:
        return web.Response(status=200)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.received.append(await request.json())
        self.headers.append(dict(request.headers))
        return await self.respond(request)

    async def start(self, app: web.Application | None = None) -> None:
        if app is None:
            app = web.Application()
            app.router.add_post("/webhook", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/webhook"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    endpoint = Receiver()
    await endpoint.start()
    yield endpoint
    await endpoint.stop()


def texts(received: list[dict[str, Any]]) -> list[str]:
    return [update["message"]["text"] for update in received]


async def test_delivery_with_the_secret_token_header(
    bot: Bot, server: TelegramServer, receiver: Receiver
) -> None:
    assert await bot.set_webhook(receiver.url, secret_token="s3cret_-token")
    pushed = server.control.send_text(10, "hello bot")

    await eventually(lambda: len(receiver.received) == 1)
    assert receiver.headers[0]["X-Telegram-Bot-Api-Secret-Token"] == "s3cret_-token"
    assert receiver.received[0]["update_id"] == pushed.update_id
    assert receiver.received[0]["message"]["from"]["id"] == 10
    await eventually(lambda: server.control.bot().updates.pending() == [])
    info = await bot.get_webhook_info()
    assert (info.url, info.pending_update_count, info.last_error_message) == (
        receiver.url,
        0,
        None,
    )


async def test_per_chat_order_kept_while_chats_run_concurrently(
    bot: Bot, server: TelegramServer, receiver: Receiver
) -> None:
    in_flight: dict[int, int] = defaultdict(int)
    most_per_chat = 0
    most_overall = 0

    async def slow(request: web.Request) -> web.StreamResponse:
        nonlocal most_per_chat, most_overall
        chat = receiver.received[-1]["message"]["chat"]["id"]
        in_flight[chat] += 1
        most_per_chat = max(most_per_chat, in_flight[chat])
        most_overall = max(most_overall, sum(in_flight.values()))
        # Earlier messages take longer: only ordering keeps them ahead of later ones.
        await asyncio.sleep(0.03 if receiver.received[-1]["message"]["text"].endswith("0") else 0)
        in_flight[chat] -= 1
        return web.Response()

    receiver.respond = slow
    await bot.set_webhook(receiver.url)
    chats = (1, 2, 3)
    for n in range(5):
        for chat in chats:
            server.control.send_text(chat, f"{chat}:{n}")

    await eventually(lambda: len(receiver.received) == 15)
    for chat in chats:
        from_chat = [t for t in texts(receiver.received) if t.startswith(f"{chat}:")]
        assert from_chat == [f"{chat}:{n}" for n in range(5)]
    assert most_per_chat == 1
    assert most_overall > 1


async def test_retried_after_errors_until_accepted(
    bot: Bot, server: TelegramServer, receiver: Receiver
) -> None:
    async def fail_twice(request: web.Request) -> web.StreamResponse:
        return web.Response(status=500 if len(receiver.received) <= 2 else 200)

    receiver.respond = fail_twice
    await bot.set_webhook(receiver.url)
    server.control.send_text(5, "first")
    server.control.send_text(5, "second")

    await eventually(lambda: len(receiver.received) == 4)
    assert texts(receiver.received) == ["first", "first", "first", "second"]
    await eventually(lambda: server.control.bot().updates.pending() == [])
    info = await bot.get_webhook_info()
    assert info.last_error_message == "Wrong response from the webhook: 500 Internal Server Error"
    assert info.last_error_date is not None


async def test_undelivered_updates_survive_deleting_the_webhook(
    bot: Bot, server: TelegramServer
) -> None:
    await bot.set_webhook("http://127.0.0.1:9/nobody-listens")
    server.control.send_text(6, "are you there?")
    await eventually(
        lambda: (
            (webhook := server.control.bot().webhook) is not None
            and webhook.config.last_error_message is not None
        )
    )
    assert (await bot.get_webhook_info()).pending_update_count == 1

    await bot.delete_webhook()
    updates = await bot.get_updates()
    assert [u.message.text for u in updates if u.message] == ["are you there?"]


async def test_drop_pending_updates(bot: Bot, server: TelegramServer) -> None:
    server.control.send_text(7, "stale")
    await bot.delete_webhook(drop_pending_updates=True)
    assert await bot.get_updates() == []


async def test_json_method_in_response_is_executed(
    bot: Bot, server: TelegramServer, receiver: Receiver
) -> None:
    async def reply(request: web.Request) -> web.StreamResponse:
        chat = receiver.received[-1]["message"]["chat"]["id"]
        return web.json_response({"method": "sendMessage", "chat_id": chat, "text": "pong"})

    receiver.respond = reply
    await bot.set_webhook(receiver.url)
    server.control.send_text(8, "ping")

    await eventually(lambda: len(server.control.calls(chat_id=8)) == 1)
    call = server.control.calls(chat_id=8)[0]
    assert (call.method, call.params, call.source, call.ok) == (
        "sendMessage",
        {"chat_id": 8, "text": "pong"},
        "webhook_reply",
        True,
    )


async def test_aiogram_dispatcher_reply_in_webhook(bot: Bot, server: TelegramServer) -> None:
    """aiogram's own webhook handler answers with a multipart form; its method runs."""
    dispatcher = Dispatcher()

    @dispatcher.message()
    async def echo(message: Message) -> SendMessage:
        return message.answer(f"echo: {message.text}")

    app = web.Application()
    handler = SimpleRequestHandler(
        dispatcher, bot, handle_in_background=False, secret_token="hook-secret"
    )
    handler.register(app, "/webhook")
    endpoint = Receiver()
    await endpoint.start(app)
    try:
        await bot.set_webhook(endpoint.url, secret_token="hook-secret")
        user_message = server.control.send_text(9, "hi there")
        assert user_message.message is not None

        await eventually(lambda: len(server.control.calls(chat_id=9)) == 1)
        call = server.control.calls(chat_id=9)[0]
        assert call.source == "webhook_reply" and call.ok
        assert call.params["text"] == "echo: hi there"
        assert call.result["message_id"] == user_message.message.message_id + 1
    finally:
        await bot.delete_webhook()
        await endpoint.stop()
