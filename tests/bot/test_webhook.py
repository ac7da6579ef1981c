"""One update, one transaction: what Telegram (the local Bot API) and the database see."""

from __future__ import annotations

import aiohttp
import asyncpg

from infra.stack import LocalStack
from services.core.db import Database
from services.telegram_api import TelegramServer

from .conftest import SECRET, StartBot, assert_each_applied_once, count, eventually, flaky_router

USER = 4242


def _message(user_id: int, text: str, language_code: str | None = None) -> dict[str, object]:
    sender: dict[str, object] = {"id": user_id, "is_bot": False, "first_name": "Ann"}
    if language_code:
        sender["language_code"] = language_code
    return {
        "message": {
            "message_id": 1,
            "date": 1_700_000_000,
            "chat": {"id": user_id, "type": "private", "first_name": "Ann"},
            "from": sender,
            "text": text,
            "entities": [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}],
        }
    }


async def test_start_registers_the_user_once_and_greets(
    start_bot: StartBot, server: TelegramServer, owner: asyncpg.Connection
) -> None:
    bot = await start_bot()
    server.control.send_text(USER, "/start", first_name="Ann")
    await eventually(lambda: len(bot.texts(USER)) == 1)
    assert bot.texts(USER)[0].startswith("Hello, Ann!")
    server.control.send_text(USER, "/start", first_name="Ann")
    await eventually(lambda: len(bot.texts(USER)) == 2)
    assert await count(owner, "SELECT count(*) FROM users WHERE telegram_id = $1", USER) == 1
    rows = await owner.fetch("SELECT direction::text, text FROM conversation_messages ORDER BY id")
    assert [row["direction"] for row in rows] == ["in", "out", "in", "out"]
    assert rows[1]["text"] == bot.texts(USER)[0]
    # Registration went through strict validation too, and set the menu in both languages.
    assert [call.method for call in server.control.calls(method="setMyCommands")] == [
        "setMyCommands",
        "setMyCommands",
    ]
    assert server.control.bot().webhook is not None


async def test_russian_user_is_answered_in_russian(
    start_bot: StartBot, server: TelegramServer
) -> None:
    bot = await start_bot()
    server.control.push_update(_message(USER, "/help", language_code="ru-RU"))
    server.control.push_update(_message(USER + 1, "/help", language_code="de"))
    await eventually(lambda: len(bot.texts(USER)) == 1 and len(bot.texts(USER + 1)) == 1)
    assert bot.texts(USER)[0].startswith("Что я умею:")
    assert "/profile" in bot.texts(USER)[0]
    assert bot.texts(USER + 1)[0].startswith("What I can do:")


async def test_duplicate_update_id_changes_nothing(
    start_bot: StartBot, server: TelegramServer, owner: asyncpg.Connection
) -> None:
    bot = await start_bot()
    first = server.control.push_update(_message(USER, "/start"))
    await eventually(lambda: len(bot.texts(USER)) == 1)
    server.control.push_update({"update_id": first.update_id, **_message(USER, "/start")})
    await eventually(lambda: bot.updates("duplicate") == 1)
    assert len(bot.texts(USER)) == 1
    assert await count(owner, "SELECT count(*) FROM conversation_messages") == 2
    assert await count(owner, "SELECT count(*) FROM processed_updates") == 1


async def test_failed_handler_is_redelivered_and_applied_once(
    start_bot: StartBot, server: TelegramServer, owner: asyncpg.Connection
) -> None:
    failures: list[str] = []
    bot = await start_bot([flaky_router(failures)])
    server.control.send_text(USER, "/flaky")
    await eventually(lambda: len(bot.texts(USER)) == 1)
    assert failures == ["failed once"]
    await eventually(lambda: bot.updates("failed") == 1)
    await eventually(lambda: bot.updates("handled") == 1)
    assert bot.texts(USER) == ["five credits added"]
    assert await owner.fetchval("SELECT credits FROM users WHERE telegram_id = $1", USER) == 5
    assert await count(owner, "SELECT count(*) FROM credit_changes") == 1
    assert await count(owner, "SELECT count(*) FROM conversation_messages") == 2
    webhook = server.control.bot().webhook
    assert webhook is not None
    assert "500" in (webhook.config.last_error_message or "")


async def test_wrong_secret_or_malformed_body_touches_nothing(
    start_bot: StartBot, owner: asyncpg.Connection
) -> None:
    bot = await start_bot()
    url = bot.url + bot.settings.webhook_path
    update = {"update_id": 7, **_message(USER, "/start")}
    right = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
    async with aiohttp.ClientSession() as http:
        async with http.post(url, json=update) as response:
            assert response.status == 401
        wrong = {"X-Telegram-Bot-Api-Secret-Token": "not-the-secret"}
        async with http.post(url, json=update, headers=wrong) as response:
            assert response.status == 401
        async with http.post(url, data=b"{not json", headers=right) as response:
            assert response.status == 400
        async with http.post(url, json={"message": "no update id"}, headers=right) as response:
            assert response.status == 400
        async with http.post(url, json=[update], headers=right) as response:
            assert response.status == 400
    for table in ("processed_updates", "users", "conversation_messages"):
        assert await count(owner, f"SELECT count(*) FROM {table}") == 0
    assert bot.sent(USER) == []


async def test_database_outage_answers_503_then_applies_every_update_once(
    stack: LocalStack,
    start_bot: StartBot,
    server: TelegramServer,
    database: Database,
    endpoints: dict[str, str],
) -> None:
    bot = await start_bot()
    # A running bot has connected before. (An engine whose very first connection meets
    # PostgreSQL down behind PgBouncer gets SQLAlchemy's ResourceClosedError from the core
    # instead of DatabaseUnavailable: answered 500 instead of 503, still redelivered.)
    await database.ping()
    users = [USER + n for n in range(3)]
    stack.stop_postgres()
    try:
        for user in users:
            server.control.send_text(user, "/start")
        await eventually(lambda: bot.updates("unavailable") >= len(users), seconds=60)
        async with (
            aiohttp.ClientSession() as http,
            http.get(bot.ops_url + "/health/ready") as ready,
        ):
            assert ready.status == 503
    finally:
        stack.start_postgres()
    await eventually(lambda: all(len(bot.texts(user)) == 1 for user in users), seconds=60)
    await eventually(lambda: bot.updates("handled") == len(users))
    await assert_each_applied_once(endpoints, len(users))
    assert all(len(bot.sent(user)) == 1 for user in users)


async def test_a_user_who_blocked_the_bot_is_marked_inactive_until_they_write_again(
    start_bot: StartBot, server: TelegramServer, owner: asyncpg.Connection
) -> None:
    bot = await start_bot()
    server.control.inject_fault("sendMessage", "blocked", chat_id=USER)
    server.control.send_text(USER, "/start")
    await eventually(lambda: bot.updates("handled") == 1)
    active = "SELECT is_active FROM users WHERE telegram_id = $1"
    assert await owner.fetchval(active, USER) is False
    server.control.send_text(USER, "/help")
    await eventually(lambda: len(bot.texts(USER)) == 1)
    assert await owner.fetchval(active, USER) is True


async def test_a_reply_refused_with_429_is_sent_after_retry_after(
    start_bot: StartBot, server: TelegramServer, owner: asyncpg.Connection
) -> None:
    bot = await start_bot()
    server.control.inject_fault("sendMessage", "retry_after", chat_id=USER, retry_after=2)
    server.control.send_text(USER, "/help")
    await eventually(lambda: len(bot.texts(USER)) == 1)
    calls = bot.sent(USER)
    assert [(call.ok, call.error_code) for call in calls] == [(False, 429), (True, None)]
    assert calls[1].params["text"] == calls[0].params["text"]
    assert calls[1].at - calls[0].at >= 2.0
    await eventually(lambda: bot.updates("handled") == 1)
    # Logged once, with the update; the outbox sent it on the update's behalf.
    outbound = "SELECT count(*) FROM conversation_messages WHERE direction = 'out'"
    assert await count(owner, outbound) == 1
    # Marked sent just after Telegram took it.
    sent = "SELECT status::text = 'sent' FROM outbox"
    await eventually(lambda: owner.fetchval(sent))


async def test_data_the_database_refuses_is_acknowledged_and_not_redelivered(
    start_bot: StartBot, server: TelegramServer, owner: asyncpg.Connection
) -> None:
    bot = await start_bot()
    update = _message(USER, "/start")
    message = update["message"]
    assert isinstance(message, dict)
    message["from"] = {"id": USER, "is_bot": False, "first_name": "A" * 65}  # the column's 64
    server.control.push_update(update)
    await eventually(lambda: bot.updates("invalid") == 1)
    webhook = server.control.bot().webhook
    assert webhook is not None
    assert webhook.config.last_error_message is None  # answered 200: Telegram is done with it
    assert await count(owner, "SELECT count(*) FROM processed_updates") == 1
    assert await count(owner, "SELECT count(*) FROM users") == 0
    assert bot.sent(USER) == []
    # The user's next, valid, update is served as usual.
    server.control.send_text(USER, "/start", first_name="Ann")
    await eventually(lambda: len(bot.texts(USER)) == 1)


async def test_health_and_metrics_are_not_on_the_published_webhook_port(
    start_bot: StartBot,
) -> None:
    bot = await start_bot()
    async with aiohttp.ClientSession() as http:
        for path in ("/metrics", "/health/live", "/health/ready"):
            async with http.get(bot.url + path) as public:
                assert public.status == 404, path
            async with http.get(bot.ops_url + path) as internal:
                assert internal.status == 200, path
        async with http.post(bot.url + bot.settings.webhook_path) as webhook:
            assert webhook.status == 401
            # No software name or version for an attacker to look up.
            assert "aiohttp" not in webhook.headers.get("Server", "")
