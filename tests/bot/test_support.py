"""Support, both ways: a user's ticket messages appear in their topic of the staff group (the
topic created once), staff answer, assign, resolve and close from the topic, and the user
reads it all in their own language."""

# The Russian user writes Cyrillic on purpose; ruff takes some of its letters for Latin
# look-alikes.
# ruff: noqa: RUF001

from __future__ import annotations

from typing import Any

import aiohttp
import asyncpg
import pytest
from aiogram import Router
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.filters import Command
from aiogram.types import Message

from services.bot import support
from services.bot.settings import BotSettings
from services.bot.texts import Text, text
from services.telegram_api import TelegramServer

from .conftest import TOKEN, RunningBot, StartBot, count, eventually

STAFF_CHAT = -1001234567890  # a forum supergroup in the local Bot API
USER = 6161
ALICE = 7070  # a staff member's Telegram account
STRANGER = 8080  # a member of the staff group who is not staff
# The outbox sends to one chat at most once a second by default; the tests need not wait.
FAST = {"staff_chat_id": STAFF_CHAT, "outbox_chat_interval": 0.01}


async def _staff(owner: asyncpg.Connection, name: str, telegram_id: int) -> int:
    staff_id: int = await owner.fetchval(
        "INSERT INTO staff (name, role, telegram_id) VALUES ($1, 'operator', $2) RETURNING id",
        name,
        telegram_id,
    )
    return staff_id


def _topic(server: TelegramServer, thread: int) -> list[str]:
    """What staff read in the topic, the bot's messages and members' alike."""
    return [
        message.text or message.caption or ""
        for message in server.control.messages(STAFF_CHAT)
        if message.message_thread_id == thread and message.forum_topic_created is None
    ]


def _topics_created(server: TelegramServer) -> list[int]:
    """The thread ids of the topics the bot created (refused attempts left out)."""
    calls = server.control.calls(STAFF_CHAT, "createForumTopic")
    return [int(call.result["message_thread_id"]) for call in calls if call.ok]


def _private(user_id: int, said: str, language_code: str) -> dict[str, Any]:
    """A user's message with their client's language (send_text sends none)."""
    message: dict[str, Any] = {
        "message_id": 1,
        "date": 1_700_000_000,
        "chat": {"id": user_id, "type": "private", "first_name": "Иван"},
        "from": {
            "id": user_id,
            "is_bot": False,
            "first_name": "Иван",
            "language_code": language_code,
        },
        "text": said,
    }
    if said.startswith("/"):
        length = len(said.split()[0])
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": length}]
    return {"message": message}


async def _ticket(owner: asyncpg.Connection) -> asyncpg.Record:
    row: asyncpg.Record = await owner.fetchrow("SELECT * FROM tickets")
    return row


async def _open_with_topic(bot: RunningBot, server: TelegramServer, said: str) -> int:
    """The user opens a ticket; returns the thread id of their topic once the copy is in."""
    server.control.send_text(USER, said, first_name="Ann")
    await eventually(lambda: len(_topics_created(server)) == 1)
    thread = _topics_created(server)[0]
    await eventually(lambda: said in _topic(server, thread))
    return thread


async def test_a_ticket_goes_both_ways_through_one_topic(
    start_bot: StartBot, server: TelegramServer, owner: asyncpg.Connection
) -> None:
    bot = await start_bot(**FAST)
    alice = await _staff(owner, "alice", ALICE)

    thread = await _open_with_topic(bot, server, "/support My printer is on fire")
    ticket = (await _ticket(owner))["id"]
    assert bot.texts(USER) == [text("en", Text.SUPPORT_OPENED, ticket=ticket)]
    assert _topic(server, thread)[0].startswith(
        f"Ticket #{ticket} from Ann (Telegram id {USER}, language -)"
    )
    server.control.send_text(USER, "It smells of smoke")
    await eventually(lambda: "It smells of smoke" in _topic(server, thread))
    assert bot.texts(USER)[1] == text("en", Text.SUPPORT_RECEIVED, ticket=ticket)
    assert _topic(server, thread)[1:] == ["/support My printer is on fire", "It smells of smoke"]
    assert len(_topics_created(server)) == 1
    assert await count(owner, "SELECT count(*) FROM forum_topics") == 1
    assert await owner.fetchval("SELECT message_thread_id FROM forum_topics") == thread
    stored = await owner.fetch("SELECT author::text, text FROM ticket_messages ORDER BY id")
    assert [tuple(row) for row in stored] == [
        ("user", "My printer is on fire"),
        ("user", "It smells of smoke"),
    ]

    server.control.send_group_text(STAFF_CHAT, ALICE, "Unplug it now!", thread, "Alice")
    await eventually(lambda: len(bot.texts(USER)) == 3)
    assert bot.texts(USER)[2] == f"Support, ticket #{ticket}:\nUnplug it now!"
    answered = await _ticket(owner)
    assert answered["status"] == "in_progress"
    assert answered["assigned_staff_id"] == alice
    assert answered["first_response_at"] is not None
    staff_said = await owner.fetch(
        "SELECT staff_id, text FROM ticket_messages WHERE author = 'staff'"
    )
    assert [tuple(row) for row in staff_said] == [(alice, "Unplug it now!")]

    server.control.send_group_text(STAFF_CHAT, ALICE, "/resolve Replaced the fuser", thread)
    await eventually(lambda: len(bot.texts(USER)) == 4)
    assert bot.texts(USER)[3].startswith(f"Ticket #{ticket} is resolved: Replaced the fuser")
    await eventually(lambda: f"Ticket #{ticket} is resolved." in _topic(server, thread))
    resolved = await _ticket(owner)
    assert (resolved["status"], resolved["solution"]) == ("resolved", "Replaced the fuser")
    assert resolved["resolved_at"] is not None

    # Writing again reopens it: the solution did not help.
    server.control.send_text(USER, "Still smoking")
    await eventually(lambda: "Still smoking" in _topic(server, thread))
    assert f"Ticket #{ticket} is in_progress." in _topic(server, thread)
    reopened = await _ticket(owner)
    assert (reopened["status"], reopened["solution"]) == ("in_progress", None)

    server.control.send_group_text(STAFF_CHAT, ALICE, "/close Sent a technician", thread)
    await eventually(lambda: len(bot.texts(USER)) == 6)
    assert bot.texts(USER)[5] == f"Ticket #{ticket} is closed. Sent a technician"
    closed = await _ticket(owner)
    assert (closed["status"], closed["solution"]) == ("closed", "Sent a technician")
    assert closed["closed_at"] is not None

    audit = await owner.fetch("SELECT staff_id, actor, action FROM audit_log ORDER BY id")
    assert [tuple(row) for row in audit] == [
        (alice, "alice", action)
        for action in ("ticket.reply", "ticket.assign", "ticket.resolve", "ticket.close")
    ]

    # No active ticket: plain text gets the catch-all answer again.
    server.control.send_text(USER, "thanks")
    await eventually(lambda: len(bot.texts(USER)) == 7)
    assert bot.texts(USER)[6] == text("en", Text.UNKNOWN)
    assert await count(owner, "SELECT count(*) FROM tickets") == 1
    assert len(_topics_created(server)) == 1


async def test_assign_command_and_the_user_closing_their_ticket(
    start_bot: StartBot, server: TelegramServer, owner: asyncpg.Connection
) -> None:
    bot = await start_bot(**FAST)
    alice = await _staff(owner, "alice", ALICE)
    thread = await _open_with_topic(bot, server, "/support Where is my order?")
    ticket = (await _ticket(owner))["id"]

    server.control.send_group_text(STAFF_CHAT, ALICE, "/assign", thread)
    await eventually(lambda: len(bot.texts(USER)) == 2)
    assert bot.texts(USER)[1] == f"Ticket #{ticket}: alice is working on it."
    await eventually(lambda: f"Ticket #{ticket} is assigned to alice." in _topic(server, thread))
    assert ((await _ticket(owner))["assigned_staff_id"], (await _ticket(owner))["status"]) == (
        alice,
        "in_progress",
    )

    server.control.send_text(USER, "/close")
    await eventually(lambda: len(bot.texts(USER)) == 3)
    assert bot.texts(USER)[2] == f"Ticket #{ticket} is closed."
    await eventually(lambda: f"Ticket #{ticket} is closed." in _topic(server, thread))
    assert (await _ticket(owner))["status"] == "closed"

    server.control.send_text(USER, "/close")
    await eventually(lambda: len(bot.texts(USER)) == 4)
    assert bot.texts(USER)[3] == text("en", Text.SUPPORT_NO_TICKET)
    # Staff answering a closed ticket are told; nothing goes to the user.
    server.control.send_group_text(STAFF_CHAT, ALICE, "Are you there?", thread)
    await eventually(lambda: text("en", Text.STAFF_NO_TICKET) in _topic(server, thread))
    assert len(bot.texts(USER)) == 4


async def test_only_staff_can_answer_and_other_group_messages_are_ignored(
    start_bot: StartBot, server: TelegramServer, owner: asyncpg.Connection
) -> None:
    bot = await start_bot(**FAST)
    await _staff(owner, "alice", ALICE)
    thread = await _open_with_topic(bot, server, "/support Hello?")
    outbox_before = await count(owner, "SELECT count(*) FROM outbox")

    # Over the control API's HTTP route, as a developer would.
    async with aiohttp.ClientSession() as http:
        response = await http.post(
            f"{server.url}/__control/group-messages",
            json={
                "chat_id": STAFF_CHAT,
                "user_id": STRANGER,
                "text": "I can answer",
                "message_thread_id": thread,
            },
        )
        assert (await response.json())["ok"] is True
    unknown = text("en", Text.STAFF_UNKNOWN, telegram_id=STRANGER)
    await eventually(lambda: unknown in _topic(server, thread))
    server.control.send_group_text(STAFF_CHAT, ALICE, "/resolve", thread)
    await eventually(lambda: text("en", Text.STAFF_NEEDS_SOLUTION) in _topic(server, thread))
    # Outside any topic: not support's business, no answer.
    server.control.send_group_text(STAFF_CHAT, ALICE, "lunch?")
    # The group's updates arrive in order: once this is answered, so was the one before.
    server.control.send_group_text(STAFF_CHAT, STRANGER, "Hello?", thread)
    await eventually(lambda: _topic(server, thread).count(unknown) == 2)

    assert await count(owner, "SELECT count(*) FROM outbox") == outbox_before
    assert await count(owner, "SELECT count(*) FROM ticket_messages WHERE author = 'staff'") == 0
    assert (await _ticket(owner))["status"] == "open"
    assert len(bot.texts(USER)) == 1
    outside_topics = [
        call for call in bot.sent(STAFF_CHAT) if call.params.get("message_thread_id") is None
    ]
    assert outside_topics == []


async def test_a_screenshot_reaches_the_topic_as_the_user_sent_it(
    start_bot: StartBot, server: TelegramServer, owner: asyncpg.Connection
) -> None:
    bot = await start_bot(**FAST)
    thread = await _open_with_topic(bot, server, "/support The page looks broken")
    screenshot = server.control.add_file(b"\x89PNG...", "screenshot.png")
    chat = server.control.bot().world.chat(USER)
    server.control.push_update(
        {
            "message": {
                "message_id": chat.last_message_id + 1,
                "date": 1_700_000_000,
                "chat": {"id": USER, "type": "private", "first_name": "Ann"},
                "from": {"id": USER, "is_bot": False, "first_name": "Ann"},
                "photo": [
                    {
                        "file_id": screenshot.file_id,
                        "file_unique_id": screenshot.file_unique_id,
                        "width": 1280,
                        "height": 720,
                    }
                ],
                "caption": "See the footer",
            }
        }
    )
    await eventually(lambda: "See the footer" in _topic(server, thread))

    copy = server.control.messages(STAFF_CHAT)[-1]
    assert copy.photo is not None and copy.photo[0].file_id == screenshot.file_id
    assert await owner.fetchval("SELECT text FROM ticket_messages ORDER BY id DESC") == (
        "See the footer"
    )


async def test_a_russian_user_reads_the_staff_reply_in_russian(
    start_bot: StartBot, server: TelegramServer, owner: asyncpg.Connection
) -> None:
    bot = await start_bot(**FAST)
    await _staff(owner, "alice", ALICE)
    server.control.push_update(_private(USER, "/support Не работает оплата", "ru"))
    await eventually(lambda: len(_topics_created(server)) == 1)
    thread = _topics_created(server)[0]
    await eventually(lambda: "/support Не работает оплата" in _topic(server, thread))
    ticket = (await _ticket(owner))["id"]
    assert bot.texts(USER) == [text("ru", Text.SUPPORT_OPENED, ticket=ticket)]
    # Alice's client is in English: the reply is framed in the user's language, not hers.
    server.control.send_group_text(STAFF_CHAT, ALICE, "Проверьте карту, пожалуйста", thread)
    await eventually(lambda: len(bot.texts(USER)) == 2)
    reply = f"Поддержка, обращение №{ticket}:\nПроверьте карту, пожалуйста"
    assert bot.texts(USER)[1] == reply


def _fails_once_after_support(failures: list[str]) -> Router:
    """The real support flow runs, then the update fails (as a lost database connection at
    commit would): its writes roll back, the topic exists, and Telegram redelivers it."""
    flow = support.router(BotSettings(token=TOKEN, staff_chat_id=STAFF_CHAT))
    router = Router(name="fails-after-support")

    async def run_then_fail(message: Message, **data: Any) -> None:
        if failures:
            raise SkipHandler  # the redelivery: the bot's own router handles it
        await flow.propagate_event("message", message, **data)
        failures.append("failed after the topic was created")
        raise RuntimeError("the update fails after the topic was created")

    router.message.register(run_then_fail, Command("support"))
    return router


async def test_an_update_failing_after_the_topic_was_created_does_not_create_another(
    start_bot: StartBot, server: TelegramServer, owner: asyncpg.Connection
) -> None:
    failures: list[str] = []
    bot = await start_bot([_fails_once_after_support(failures)], **FAST)
    server.control.send_text(USER, "/start")  # a known user: their row is committed
    await eventually(lambda: len(bot.texts(USER)) == 1)

    server.control.send_text(USER, "/support The app crashes")
    await eventually(lambda: len(bot.texts(USER)) == 2)
    thread = _topics_created(server)[0]
    await eventually(lambda: "/support The app crashes" in _topic(server, thread))

    assert failures == ["failed after the topic was created"]
    await eventually(lambda: bot.updates("failed") == 1)
    assert len(_topics_created(server)) == 1
    assert await count(owner, "SELECT count(*) FROM forum_topics") == 1
    assert await count(owner, "SELECT count(*) FROM tickets") == 1
    assert await count(owner, "SELECT count(*) FROM ticket_messages") == 1
    assert _topic(server, thread)[1:] == ["/support The app crashes"]


async def test_a_new_users_first_support_failing_once_makes_one_topic_after_the_user(
    start_bot: StartBot, server: TelegramServer, owner: asyncpg.Connection
) -> None:
    failures: list[str] = []
    bot = await start_bot([_fails_once_after_support(failures)], **FAST)
    # Their first message: the user's row is written by this very update.
    server.control.send_text(USER, "/support The app crashes", first_name="Ann")
    await eventually(lambda: len(bot.texts(USER)) == 1)  # after the redelivery
    await eventually(lambda: len(_topics_created(server)) == 1)
    thread = _topics_created(server)[0]
    await eventually(lambda: "/support The app crashes" in _topic(server, thread))

    assert failures == ["failed after the topic was created"]
    await eventually(lambda: bot.updates("failed") == 1)
    assert len(server.control.calls(STAFF_CHAT, "createForumTopic")) == 1
    ticket = (await _ticket(owner))["id"]
    assert bot.texts(USER) == [text("en", Text.SUPPORT_OPENED, ticket=ticket)]
    assert await count(owner, "SELECT count(*) FROM forum_topics") == 1
    assert await count(owner, "SELECT count(*) FROM tickets") == 1
    assert _topic(server, thread)[0].startswith(f"Ticket #{ticket} from Ann")
    assert _topic(server, thread)[1:] == ["/support The app crashes"]
    # No statement was refused: the topic's row never came before its user's.
    refused = bot.metrics.registry.get_sample_value("db_errors_total", {"kind": "conflict"})
    assert not refused


async def test_a_topic_created_but_not_stored_is_logged(
    start_bot: StartBot,
    server: TelegramServer,
    owner: asyncpg.Connection,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bot = await start_bot(**FAST)
    server.control.send_text(USER, "/start")  # a known user: their topic is stored at once
    await eventually(lambda: len(bot.texts(USER)) == 1)
    # The thread id the fresh group hands out first is already another user's (as after a
    # restore that brought back old rows): storing the new topic is refused.
    other = await owner.fetchval(
        "INSERT INTO users (telegram_id, first_name) VALUES (5555, 'Bob') RETURNING id"
    )
    await owner.execute(
        "INSERT INTO forum_topics (user_id, chat_id, message_thread_id) VALUES ($1, $2, 1)",
        other,
        STAFF_CHAT,
    )
    server.control.send_text(USER, "/support Anyone?")
    await eventually(lambda: len(bot.texts(USER)) == 2)  # the redelivery got a topic stored

    assert _topics_created(server)[0] == 1
    user_id = await owner.fetchval("SELECT id FROM users WHERE telegram_id = $1", USER)
    logged = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert f"support topic 1 of user {user_id} created in chat {STAFF_CHAT} but not stored" in (
        "\n".join(logged)
    )


async def test_a_group_refusing_topics_loses_nothing_and_the_topic_catches_up_later(
    start_bot: StartBot, server: TelegramServer, owner: asyncpg.Connection
) -> None:
    bot = await start_bot(**FAST)
    # 403, as when the bot was removed from the group: retrying the update would not help.
    server.control.inject_fault("createForumTopic", "blocked", chat_id=STAFF_CHAT)
    server.control.send_text(USER, "/support Is anyone there?", first_name="Ann")
    await eventually(lambda: len(bot.texts(USER)) == 1)
    # A new user's topic is asked for once their update has committed: refused.
    await eventually(lambda: len(server.control.calls(STAFF_CHAT, "createForumTopic")) == 1)
    assert _topics_created(server) == []

    async def settled() -> bool:  # not retried: the topic's outbox row is done
        return await count(owner, "SELECT count(*) FROM outbox WHERE status = 'pending'") == 0

    await eventually(settled)

    server.control.send_text(USER, "Hello?", first_name="Ann")
    await eventually(lambda: len(_topics_created(server)) == 1)
    thread = _topics_created(server)[0]
    await eventually(lambda: "Hello?" in _topic(server, thread))
    ticket = (await _ticket(owner))["id"]
    assert _topic(server, thread)[0].startswith(f"Ticket #{ticket} from Ann")
    assert _topic(server, thread)[1:] == ["/support Is anyone there?", "Hello?"]
    assert bot.updates("failed") == 0


@pytest.mark.parametrize("known", [True, False], ids=["known-user", "new-user"])
async def test_telegram_asking_to_wait_delays_the_topic_without_doubling_it(
    start_bot: StartBot, server: TelegramServer, owner: asyncpg.Connection, known: bool
) -> None:
    bot = await start_bot(**FAST)
    if known:
        server.control.send_text(USER, "/start")
        await eventually(lambda: len(bot.texts(USER)) == 1)
    server.control.inject_fault("createForumTopic", "retry_after", retry_after=1)
    thread = await _open_with_topic(bot, server, "/support Slow day?")

    # A known user's update fails and Telegram redelivers it; a new user's topic is made
    # after their update commits, and the outbox tries again.
    await eventually(lambda: bot.updates("failed") == (1 if known else 0))
    assert len(server.control.calls(STAFF_CHAT, "createForumTopic")) == 2  # refused, then made
    assert len(_topics_created(server)) == 1
    assert _topic(server, thread)[1:] == ["/support Slow day?"]
    opened = text("en", Text.SUPPORT_OPENED, ticket=(await _ticket(owner))["id"])
    assert bot.texts(USER)[known:] == [opened]


async def test_without_a_staff_group_tickets_still_work(
    start_bot: StartBot, server: TelegramServer, owner: asyncpg.Connection
) -> None:
    bot = await start_bot()
    server.control.send_text(USER, "hello")
    await eventually(lambda: len(bot.texts(USER)) == 1)
    assert bot.texts(USER)[0] == text("en", Text.UNKNOWN)
    server.control.send_text(USER, "/support")
    server.control.send_text(USER, "My card was charged twice")
    await eventually(lambda: len(bot.texts(USER)) == 3)

    ticket = await _ticket(owner)
    assert bot.texts(USER)[2] == text("en", Text.SUPPORT_RECEIVED, ticket=ticket["id"])
    assert ticket["subject"] == "My card was charged twice"
    assert await count(owner, "SELECT count(*) FROM ticket_messages") == 1
    assert server.control.calls(method="createForumTopic") == []
    assert await count(owner, "SELECT count(*) FROM outbox") == 0
