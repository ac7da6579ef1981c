"""Staff working from the admin API reach the user through the bot, across processes: the
stack's admin-api process writes the outbox through PgBouncer, the bot delivers it to the
Bot API in the user's language, and posts what was done in the user's support topic."""

# The user's texts are Cyrillic on purpose; ruff takes some of its letters for Latin.
# ruff: noqa: RUF001

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import httpx

from services.admin_api.auth import issue_key
from services.core.db import Database
from services.core.schema import Role, Staff
from services.telegram_api import TelegramServer

from .conftest import StartBot, eventually

USER = 8181
STAFF_CHAT = -1009876543210  # a forum supergroup in the local Bot API


async def _operator_key(database: Database) -> dict[str, str]:
    async with database.unit_of_work() as uow:
        staff = Staff(name="Olga", role=Role.OPERATOR)
        uow.session.add(staff)
        await uow.session.flush()
        assert staff.id is not None
        key = (await issue_key(uow, staff.id, "e2e")).key
    return {"Authorization": f"Bearer {key}"}


def _russian(text: str) -> dict[str, object]:
    message: dict[str, object] = {
        "message_id": 1,
        "date": 1_700_000_000,
        "chat": {"id": USER, "type": "private", "first_name": "Иван"},
        "from": {"id": USER, "is_bot": False, "first_name": "Иван", "language_code": "ru"},
        "text": text,
    }
    if text.startswith("/"):
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text)}]
    return {"message": message}


async def test_a_reply_closing_and_cancellation_from_the_admin_api_reach_the_user_in_russian(
    start_bot: StartBot,
    server: TelegramServer,
    database: Database,
    owner: asyncpg.Connection,
    endpoints: dict[str, str],
) -> None:
    bot = await start_bot(outbox_chat_interval=0.01, staff_chat_id=STAFF_CHAT)
    server.control.push_update(_russian("/support"))
    await eventually(lambda: len(bot.texts(USER)) == 1)
    ticket = await owner.fetchval("SELECT id FROM tickets")
    user_id = await owner.fetchval("SELECT id FROM users WHERE telegram_id = $1", USER)
    starts_at = datetime(2100, 3, 4, 10, 0, tzinfo=UTC)
    appointment = await owner.fetchval(
        "INSERT INTO appointments (user_id, starts_at, ends_at) VALUES ($1, $2, $3) RETURNING id",
        user_id,
        starts_at,
        starts_at + timedelta(hours=1),
    )
    operator = await _operator_key(database)

    async with httpx.AsyncClient(base_url=endpoints["admin_api_url"], headers=operator) as api:
        reply = await api.post(f"/tickets/{ticket}/reply", json={"text": "Кредиты вернули."})
        assert reply.status_code == 201
        await eventually(lambda: len(bot.texts(USER)) == 2)
        closed = await api.post(f"/tickets/{ticket}/close", json={"solution": "Ошибка учёта."})
        assert closed.status_code == 200
        cancelled = await api.post(f"/appointments/{appointment}/cancel")
        assert cancelled.status_code == 200
    await eventually(lambda: len(bot.texts(USER)) == 4)

    assert bot.texts(USER)[1:] == [
        f"Поддержка, обращение №{ticket}:\nКредиты вернули.",
        f"Обращение №{ticket} закрыто. Ошибка учёта.",
        "Извините, ваша запись на 04.03.2100 10:00 (UTC) отменена. Отправьте /book, чтобы "
        "выбрать другое время.",
    ]
    # Staff working in Telegram see in the user's topic what was done in the admin API.
    thread = await owner.fetchval("SELECT message_thread_id FROM forum_topics")

    def topic() -> list[str | None]:
        return [
            message.text
            for message in server.control.messages(STAFF_CHAT)
            if message.message_thread_id == thread and message.forum_topic_created is None
        ]

    await eventually(lambda: len(topic()) == 3)
    assert topic()[1:] == [
        f"Olga answered ticket #{ticket} in the admin API:\nКредиты вернули.",
        f"Ticket #{ticket} is closed.",
    ]
    await eventually(lambda: owner.fetchval("SELECT bool_and(status = 'sent') FROM outbox"))
