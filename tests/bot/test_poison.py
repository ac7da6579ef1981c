"""Input that can never be processed is refused with 400 (Telegram does not redeliver it) and
counted, instead of a 500 that Telegram would redeliver forever, wedging the chat."""

from __future__ import annotations

import json
import logging

import aiohttp
import asyncpg
import pytest

from services.bot.webhook import SECRET_HEADER

from .conftest import SECRET, StartBot, count

USER = 4343


def _nested(depth: int) -> dict[str, object]:
    value: dict[str, object] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


async def test_poison_updates_are_refused_and_delivery_goes_on(
    start_bot: StartBot, owner: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    bot = await start_bot()
    url = bot.url + bot.settings.webhook_path
    message = {
        "message_id": 1,
        "date": 1_700_000_000,
        "chat": {"id": USER, "type": "private", "first_name": "Ann"},
        "from": {"id": USER, "is_bot": False, "first_name": "Ann"},
        "text": "hi",
    }
    poison = [
        json.dumps({"update_id": 2**63, "message": message}),
        json.dumps({"update_id": -1, "message": message}),
        "[" * 1000 + "]" * 1000,
        json.dumps({"update_id": 7, "new_kind_of_update": _nested(900)}),
        json.dumps({"update_id": 8, "message": {**message, "reply_markup": _nested(200)}}),
    ]
    rejected = bot.updates("rejected", "unknown")
    async with aiohttp.ClientSession(headers={SECRET_HEADER: SECRET}) as http:
        for body in poison:
            for _ in range(2):  # the same answer on a redelivery
                async with http.post(url, data=body) as response:
                    assert response.status == 400, body[:80]
        assert bot.updates("rejected", "unknown") == rejected + 2 * len(poison)
        # An update of a type this aiogram does not know is acknowledged and recorded, and
        # its content (user text) is not logged.
        caplog.set_level(logging.INFO)
        unknown = {"update_id": 9, "new_kind_of_update": {"text": "private words"}}
        async with http.post(url, json=unknown) as response:
            assert response.status == 200
        assert "private words" not in caplog.text
        # Delivery goes on.
        async with http.post(url, json={"update_id": 10, "message": message}) as response:
            assert response.status == 200
    assert await count(owner, "SELECT count(*) FROM processed_updates") == 2
