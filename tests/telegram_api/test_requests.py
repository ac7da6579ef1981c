"""The wire format: every way a client may send parameters, Telegram's envelope, and the
answers to invalid calls (which strict mode turns into a failed run)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramBadRequest, TelegramNotFound, TelegramUnauthorizedError
from aiogram.methods import TelegramMethod

from services.telegram_api import StrictModeError, TelegramAPISettings, TelegramServer

from .conftest import TOKEN

USER = 777


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def answer(response: aiohttp.ClientResponse) -> tuple[int, dict[str, Any]]:
    return response.status, await response.json()


async def test_get_with_query_string(server: TelegramServer, http: aiohttp.ClientSession) -> None:
    url = f"{server.url}/bot{TOKEN}/sendMessage"
    async with http.get(url, params={"chat_id": str(USER), "text": "42"}) as response:
        status, body = await answer(response)
    assert status == 200 and body["ok"] is True
    assert body["result"]["text"] == "42"  # a string field keeps a numeric-looking value
    assert body["result"]["chat"]["id"] == USER


async def test_post_json_body(server: TelegramServer, http: aiohttp.ClientSession) -> None:
    markup = {"inline_keyboard": [[{"text": "Yes", "callback_data": "yes"}]]}
    payload = {"chat_id": USER, "text": "sure?", "reply_markup": markup}
    async with http.post(f"{server.url}/bot{TOKEN}/sendmessage", json=payload) as response:
        status, body = await answer(response)
    assert status == 200
    assert body["result"]["reply_markup"] == markup
    assert server.control.calls(USER)[0].params == payload


async def test_post_urlencoded_form_with_json_encoded_markup(
    server: TelegramServer, http: aiohttp.ClientSession
) -> None:
    markup = {"inline_keyboard": [[{"text": "Go", "callback_data": "go"}]]}
    form = {"chat_id": str(USER), "text": "form", "reply_markup": json.dumps(markup)}
    async with http.post(f"{server.url}/bot{TOKEN}/sendMessage", data=form) as response:
        status, body = await answer(response)
    assert status == 200 and body["result"]["reply_markup"] == markup


async def test_multipart_with_a_file_upload_is_parsed_to_the_end(
    server: TelegramServer, http: aiohttp.ClientSession
) -> None:
    form = aiohttp.FormData()
    form.add_field("chat_id", str(USER))
    form.add_field("text", "with an unused attachment")
    form.add_field("abc123", b"\x00binary", filename="note.bin")
    async with http.post(f"{server.url}/bot{TOKEN}/sendMessage", data=form) as response:
        status, _ = await answer(response)
    assert status == 200
    assert server.control.calls(USER)[0].params == {
        "chat_id": USER,
        "text": "with an unused attachment",
    }


async def test_unknown_method_is_404(server: TelegramServer, http: aiohttp.ClientSession) -> None:
    async with http.post(f"{server.url}/bot{TOKEN}/sendTelepathy") as response:
        status, body = await answer(response)
    assert (status, body) == (
        404,
        {"ok": False, "error_code": 404, "description": "Not Found: method not found"},
    )
    assert server.control.take_violations() == [
        "bot 1000000001: sendTelepathy: Not Found: method not found"
    ]


@pytest.mark.parametrize(
    ("params", "description"),
    [
        ({"chat_id": "1"}, "Bad Request: message text is empty"),
        ({"text": "hi"}, "Bad Request: parameter chat_id is required"),
        ({"chat_id": "1", "text": "hi", "colour": "red"}, "Bad Request: unknown parameter colour"),
        (
            {"chat_id": "1", "text": "hi", "message_thread_id": "first"},
            "Bad Request: invalid parameter message_thread_id: Input should be a valid integer",
        ),
        (
            {"chat_id": "1", "text": "hi", "reply_markup": '{"inline_keybord": []}'},
            "Bad Request: invalid parameter reply_markup: unknown field inline_keybord",
        ),
    ],
)
async def test_invalid_parameters_are_400(
    server: TelegramServer, http: aiohttp.ClientSession, params: dict[str, str], description: str
) -> None:
    async with http.post(f"{server.url}/bot{TOKEN}/sendMessage", data=params) as response:
        status, body = await answer(response)
    assert status == 400 and body["error_code"] == 400
    assert body["description"].startswith(description)
    assert len(server.control.take_violations()) == 1


async def test_aiogram_sees_invalid_calls_as_its_exceptions(
    bot: Bot, server: TelegramServer
) -> None:
    class SendTelepathy(TelegramMethod[bool]):
        __returning__ = bool
        __api_method__ = "sendTelepathy"

    with pytest.raises(TelegramNotFound, match="method not found"):
        await bot(SendTelepathy())
    with pytest.raises(TelegramBadRequest, match="message text is empty"):
        await bot.send_message(USER, "")  # aiogram drops empty strings from the form
    async with Bot("1:wrong-token", session=AiohttpSession(api=bot.session.api)) as stranger:
        with pytest.raises(TelegramUnauthorizedError, match="Unauthorized"):
            await stranger.get_me()
    assert len(server.control.take_violations()) == 3


async def test_a_method_the_stand_in_lacks_is_reported(bot: Bot, server: TelegramServer) -> None:
    with pytest.raises(Exception, match="does not implement sendDice"):
        await bot.send_dice(USER)
    assert server.control.take_violations() == [
        "bot 1000000001: sendDice: Not Implemented: the local Bot API does not implement sendDice"
    ]


async def test_strict_mode_fails_the_run_on_stop() -> None:
    telegram = TelegramServer(TelegramAPISettings(port=0, tokens=(TOKEN,)))
    await telegram.start()
    session = AiohttpSession(api=TelegramAPIServer.from_base(telegram.url))
    async with Bot(TOKEN, session=session) as client:
        with pytest.raises(TelegramBadRequest):
            await client.send_message(USER, "")
    with pytest.raises(StrictModeError, match="message text is empty"):
        await telegram.stop()


async def test_lenient_mode_only_answers_the_error() -> None:
    telegram = TelegramServer(TelegramAPISettings(port=0, tokens=(TOKEN,), strict=False))
    await telegram.start()
    session = AiohttpSession(api=TelegramAPIServer.from_base(telegram.url))
    async with Bot(TOKEN, session=session) as client:
        with pytest.raises(TelegramBadRequest):
            await client.send_message(USER, "")
    await telegram.stop()


async def test_file_download_path_checks_the_token(
    server: TelegramServer, http: aiohttp.ClientSession
) -> None:
    stored = server.control.add_file(b"%PDF-1.7", "receipt.pdf")
    async with http.get(f"{server.url}/file/bot{TOKEN}/{stored.file_path}") as response:
        assert (response.status, await response.read()) == (200, b"%PDF-1.7")
    async with http.get(f"{server.url}/file/bot{TOKEN}/documents/none.jpg") as response:
        assert (await answer(response))[0] == 404
    async with http.get(f"{server.url}/file/bot1:bad/{stored.file_path}") as response:
        assert (await answer(response))[0] == 401
    assert len(server.control.take_violations()) == 1


async def test_health_live(server: TelegramServer, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{server.url}/health/live") as response:
        assert response.status == 200


async def test_malformed_json_body_is_400(
    server: TelegramServer, http: aiohttp.ClientSession
) -> None:
    headers = {"Content-Type": "application/json"}
    url = f"{server.url}/bot{TOKEN}/sendMessage"
    async with http.post(url, data=b"{not json", headers=headers) as response:
        status, body = await answer(response)
    assert (status, body["description"]) == (400, "Bad Request: can't parse JSON body")
    assert server.control.take_violations() == [
        "bot 1000000001: sendMessage: Bad Request: can't parse JSON body"
    ]
