"""The outbox worker: what other services queued reaches the user, within Telegram's limits,
with Telegram's 429 honoured and blocked users marked inactive."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from itertools import pairwise

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from services.bot.metrics import BotMetrics
from services.bot.outbox import OutboxLimits, OutboxWorker
from services.bot.settings import BotSettings
from services.bot.telegram import create_bot
from services.bot.texts import Text
from services.core.db import Database
from services.core.notices import Notice
from services.telegram_api import TelegramServer

from .conftest import TOKEN, eventually

ANN, BOB = 7171, 7272
CHAT_INTERVAL = 0.3


@pytest.fixture
async def worker(server: TelegramServer, database: Database) -> AsyncIterator[OutboxWorker]:
    metrics = BotMetrics(CollectorRegistry())
    bot = create_bot(BotSettings(token=TOKEN, api_url=server.url), metrics)
    try:
        yield OutboxWorker(database, bot, metrics, OutboxLimits(chat_interval=CHAT_INTERVAL))
    finally:
        await bot.session.close()


async def _queue(database: Database, telegram_id: int, *texts: str) -> int:
    async with database.unit_of_work() as uow:
        user_id = await uow.users.upsert(telegram_id, first_name="User")
        for text in texts:
            await uow.outbox.enqueue(telegram_id, text, user_id=user_id)
    return user_id


async def _statuses(owner: asyncpg.Connection) -> list[str]:
    return [row[0] for row in await owner.fetch("SELECT status::text FROM outbox ORDER BY id")]


async def _attempts(owner: asyncpg.Connection, attempts: int) -> bool:
    return bool(await owner.fetchval("SELECT attempts FROM outbox") == attempts)


async def test_messages_arrive_in_order_one_chat_at_a_time(
    worker: OutboxWorker, database: Database, server: TelegramServer, owner: asyncpg.Connection
) -> None:
    await _queue(database, ANN, "first", "second", "third")
    await _queue(database, BOB, "hello Bob")
    assert await worker.deliver_due() == 4
    ann = server.control.calls(ANN, "sendMessage")
    assert [call.params["text"] for call in ann] == ["first", "second", "third"]
    assert all(call.ok for call in ann)
    gaps = [later.at - earlier.at for earlier, later in pairwise(ann)]
    assert min(gaps) >= CHAT_INTERVAL * 0.9  # a chat gets its next message a slot later
    # Bob did not wait behind Ann's queue.
    assert server.control.calls(BOB, "sendMessage")[0].at < ann[1].at
    assert await _statuses(owner) == ["sent"] * 4
    logged = await owner.fetch(
        "SELECT text, telegram_message_id FROM conversation_messages WHERE direction = 'out'"
    )
    assert len(logged) == 4
    assert all(row["telegram_message_id"] for row in logged)
    assert await worker.deliver_due() == 0  # nothing is sent twice


async def test_depth_and_oldest_age_are_measured(
    worker: OutboxWorker, database: Database, owner: asyncpg.Connection
) -> None:
    registry = worker.metrics.registry
    await _queue(database, ANN, "one", "two")
    await owner.execute(
        "UPDATE outbox SET created_at = now() - interval '90 seconds', "
        "available_at = now() - interval '90 seconds'"
    )
    # A reminder booked an hour ago for tomorrow is waiting, but not late: not counted.
    await _queue(database, BOB, "your appointment is tomorrow")
    await owner.execute(
        "UPDATE outbox SET created_at = now() - interval '1 hour', "
        "available_at = now() + interval '1 day' WHERE chat_id = $1",
        BOB,
    )
    await worker.measure()
    assert registry.get_sample_value("bot_outbox_pending") == 2
    assert 90 <= (registry.get_sample_value("bot_outbox_oldest_pending_age_seconds") or 0) < 120
    assert await worker.deliver_due() == 2
    await worker.measure()
    assert registry.get_sample_value("bot_outbox_pending") == 0
    assert registry.get_sample_value("bot_outbox_oldest_pending_age_seconds") == 0


async def test_too_many_requests_waits_as_long_as_telegram_says(
    worker: OutboxWorker, database: Database, server: TelegramServer, owner: asyncpg.Connection
) -> None:
    await _queue(database, ANN, "patience")
    server.control.inject_fault("sendMessage", "retry_after", retry_after=1)
    assert await worker.deliver_due() == 1
    assert await _statuses(owner) == ["pending"]
    assert await worker.deliver_due() == 0  # not due before retry_after has passed
    await asyncio.sleep(1.1)
    assert await worker.deliver_due() == 1
    calls = server.control.calls(ANN, "sendMessage")
    assert [(call.ok, call.error_code) for call in calls] == [(False, 429), (True, None)]
    assert calls[1].at - calls[0].at >= 1.0
    assert await _statuses(owner) == ["sent"]


async def test_a_user_who_blocked_the_bot_is_marked_inactive(
    worker: OutboxWorker, database: Database, server: TelegramServer, owner: asyncpg.Connection
) -> None:
    await _queue(database, ANN, "are you there?")
    await _queue(database, BOB, "hi")
    server.control.inject_fault("sendMessage", "blocked", chat_id=ANN)
    assert await worker.deliver_due() == 2
    assert await _statuses(owner) == ["failed", "sent"]
    active = dict(await owner.fetch("SELECT telegram_id, is_active FROM users"))
    assert active == {ANN: False, BOB: True}
    assert await worker.deliver_due() == 0  # given up: never retried


async def test_run_delivers_until_stopped(
    worker: OutboxWorker, database: Database, server: TelegramServer
) -> None:
    stopping = asyncio.Event()
    running = asyncio.create_task(worker.run(stopping))
    await _queue(database, ANN, "queued while running")
    for _ in range(100):
        if server.control.calls(ANN, "sendMessage"):
            break
        await asyncio.sleep(0.05)
    stopping.set()
    await asyncio.wait_for(running, timeout=5)
    assert [call.params["text"] for call in server.control.calls(ANN)] == ["queued while running"]


async def test_a_batch_claimed_by_a_bot_that_died_is_sent_after_its_lease(
    server: TelegramServer, database: Database, owner: asyncpg.Connection
) -> None:
    metrics = BotMetrics(CollectorRegistry())
    bot = create_bot(BotSettings(token=TOKEN, api_url=server.url), metrics)
    try:
        dying = OutboxWorker(database, bot, metrics, OutboxLimits(lease_seconds=1))
        survivor = OutboxWorker(database, bot, metrics, OutboxLimits())
        await _queue(database, ANN, "do not lose me")
        # The first bot claims the message and is killed while Telegram is slow to answer.
        server.control.inject_fault("sendMessage", "delay", delay=3)
        claimed = asyncio.create_task(dying.deliver_due())
        await eventually(lambda: _attempts(owner, 1))  # the claim has committed
        claimed.cancel()
        server.control.clear_faults()
        assert await _statuses(owner) == ["pending"]
        assert await survivor.deliver_due() == 0  # still leased to the dead one
        await asyncio.sleep(1.0)
        assert await survivor.deliver_due() == 1
        sent = [call for call in server.control.calls(ANN, "sendMessage") if call.ok]
        assert [call.params["text"] for call in sent][-1:] == ["do not lose me"]
        assert await _statuses(owner) == ["sent"]
    finally:
        await bot.session.close()


def test_every_notice_has_words_in_every_language() -> None:
    assert {notice.value for notice in Notice} <= {key.value for key in Text}


async def test_notices_are_worded_in_the_users_language(
    worker: OutboxWorker, database: Database, server: TelegramServer, owner: asyncpg.Connection
) -> None:
    async with database.unit_of_work() as uow:
        for telegram_id, language in ((ANN, "ru-RU"), (BOB, None)):
            user_id = await uow.users.upsert(telegram_id, first_name="U", language_code=language)
            user = await uow.users.get(user_id)
            await uow.outbox.tell(user, Notice.TICKET_CLOSED, {"ticket": 7, "solution": "Done."})
        # A notice without the values its words need fails; nothing else does.
        await uow.outbox.tell(user, Notice.TICKET_REPLY, {"ticket": 7})
    assert await worker.deliver_due() == 3
    assert [call.params["text"] for call in server.control.calls(ANN, "sendMessage")] == [
        "Обращение №7 закрыто. Done."
    ]
    assert [call.params["text"] for call in server.control.calls(BOB, "sendMessage")] == [
        "Ticket #7 is closed. Done."
    ]
    assert await _statuses(owner) == ["sent", "sent", "failed"]
    error = await owner.fetchval("SELECT last_error FROM outbox WHERE status = 'failed'")
    assert "support_reply" in error
    logged = "SELECT text FROM conversation_messages WHERE direction = 'out' ORDER BY id"
    assert [row[0] for row in await owner.fetch(logged)] == [
        "Обращение №7 закрыто. Done.",
        "Ticket #7 is closed. Done.",
    ]


async def test_a_message_waiting_for_its_retry_holds_its_chats_later_ones_back(
    worker: OutboxWorker, database: Database, server: TelegramServer, owner: asyncpg.Connection
) -> None:
    await _queue(database, ANN, "first", "second")
    server.control.inject_fault("sendMessage", "retry_after", chat_id=ANN, retry_after=60)
    assert await worker.deliver_due() == 2
    # "second" was not attempted: put back behind "first", its claim not counted.
    rows = await owner.fetch("SELECT status::text, attempts FROM outbox ORDER BY id")
    assert [tuple(row) for row in rows] == [("pending", 1), ("pending", 0)]
    await _queue(database, ANN, "third")  # due at once, but behind "first"
    await _queue(database, BOB, "hello Bob")  # another chat is not held
    assert await worker.deliver_due() == 1
    assert [call.params["text"] for call in server.control.calls(BOB) if call.ok] == ["hello Bob"]
    await owner.execute("UPDATE outbox SET available_at = now() WHERE status = 'pending'")
    assert await worker.deliver_due() == 3
    sent = [call.params["text"] for call in server.control.calls(ANN) if call.ok]
    assert sent == ["first", "second", "third"]


async def test_a_5xx_is_retried_and_a_call_that_got_no_answer_is_given_up(
    server: TelegramServer, database: Database, owner: asyncpg.Connection
) -> None:
    metrics = BotMetrics(CollectorRegistry())
    settings = BotSettings(token=TOKEN, api_url=server.url, api_timeout_seconds=1)
    bot = create_bot(settings, metrics)
    worker = OutboxWorker(database, bot, metrics, OutboxLimits())
    try:
        await _queue(database, ANN, "refused, then taken")
        server.control.inject_fault("sendMessage", "server_error", status=502)
        assert await worker.deliver_due() == 1
        assert await _statuses(owner) == ["pending"]  # Telegram did not take it: again later
        await owner.execute("UPDATE outbox SET available_at = now()")
        assert await worker.deliver_due() == 1
        assert await _statuses(owner) == ["sent"]

        await _queue(database, BOB, "taken, answered too late")
        server.control.inject_fault("sendMessage", "delay", delay=3)
        assert await worker.deliver_due() == 1
        assert await _statuses(owner) == ["sent", "failed"]
        error = await owner.fetchval("SELECT last_error FROM outbox WHERE chat_id = $1", BOB)
        assert error.startswith("in doubt, not sent again")
        # Telegram acted on it: delivered once, by the one request.
        await eventually(lambda: len(server.control.calls(BOB, "sendMessage")) == 1)
        assert await worker.deliver_due() == 0
        assert [call.ok for call in server.control.calls(BOB, "sendMessage")] == [True]
    finally:
        await bot.session.close()
