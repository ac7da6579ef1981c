"""Bookings end to end: /book offers the free slots of the business hours, a press books one
(a contested slot goes to exactly one user, the others get fresh slots), the reminder waits
in the outbox, /my cancels, and forged or stale presses change nothing."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from aiogram.types import Message
from prometheus_client import CollectorRegistry

from services.bot.texts import Text, text
from services.core.db import Database
from services.core.errors import Conflict
from services.core.schema import Direction
from services.telegram_api import TelegramServer
from services.telegram_api.envelope import to_json
from tests.conftest import database_settings
from tests.integration.conftest import MODES, bouncer_dsn

from .conftest import StartBot, count, eventually

USER = 7171
ZONE_NAME = "Asia/Kathmandu"  # UTC+05:45: a time zone no one mistakes for UTC
ZONE = ZoneInfo(ZONE_NAME)
# Two-hour slots from 09:00 to 17:00 (09, 11, 13, 15) for three days: whatever the time of
# day, the last slot offered is more than a day away, and there are at most 12 of them.
HOURS: dict[str, Any] = {
    "open": "09:00",
    "close": "17:00",
    "slot_minutes": 120,
    "timezone": ZONE_NAME,
}
DAYS = 3


async def _start(
    start_bot: StartBot, owner: asyncpg.Connection, hours: dict[str, Any] = HOURS, **settings: Any
) -> None:
    """A bot offering DAYS days of the business hours an admin set (the runtime setting)."""
    await owner.execute(
        "INSERT INTO runtime_settings (key, value, description) VALUES ('booking.hours', $1, '')",
        json.dumps(hours),
    )
    await start_bot(booking_days=DAYS, **settings)


def _sender(user: int, language_code: str | None) -> dict[str, Any]:
    sender: dict[str, Any] = {"id": user, "is_bot": False, "first_name": "Ann"}
    if language_code:
        sender["language_code"] = language_code
    return sender


def _send(server: TelegramServer, user: int, command: str, language_code: str | None) -> None:
    """The user sends a command from a Telegram app set to `language_code`."""
    shown = server.control.messages(user)
    server.control.push_update(
        {
            "message": {
                "message_id": shown[-1].message_id + 1 if shown else 1,
                "date": 1_700_000_000,
                "chat": {"id": user, "type": "private", "first_name": "Ann"},
                "from": _sender(user, language_code),
                "text": command,
                "entities": [{"type": "bot_command", "offset": 0, "length": len(command)}],
            }
        }
    )


def _from_bot(server: TelegramServer, user: int) -> list[Message]:
    """The bot's messages in the user's chat as the user sees them now (edits applied)."""
    return [
        message
        for message in server.control.messages(user)
        if message.from_user is not None and message.from_user.is_bot
    ]


def _shown(server: TelegramServer, user: int, message_id: int) -> Message:
    return next(m for m in server.control.messages(user) if m.message_id == message_id)


def _buttons(message: Message) -> list[tuple[str, str]]:
    """(text, callback data) of the message's buttons, row by row."""
    rows = message.reply_markup.inline_keyboard if message.reply_markup else []
    return [(button.text, str(button.callback_data)) for row in rows for button in row]


def _slot(data: str) -> datetime:
    """The slot start a book button stands for."""
    return datetime.fromtimestamp(int(data.removeprefix("book:")), UTC)


async def _command(
    server: TelegramServer, user: int, command: str, language_code: str | None = None
) -> Message:
    """Sends the command; the bot's answer."""
    before = len(_from_bot(server, user))
    _send(server, user, command, language_code)
    await eventually(lambda: len(_from_bot(server, user)) == before + 1)
    return _from_bot(server, user)[-1]


def _push_press(
    server: TelegramServer, user: int, message: Message, data: str, language_code: str | None
) -> None:
    """A press as Telegram delivers it, with whatever data (a forged one included)."""
    server.control.push_update(
        {
            "callback_query": {
                "id": secrets.token_hex(8),
                "from": _sender(user, language_code),
                "chat_instance": str(user),
                "message": to_json(message),
                "data": data,
            }
        }
    )


def _edits(server: TelegramServer, user: int) -> int:
    return len(server.control.calls(user, "editMessageText"))


async def _press(
    server: TelegramServer,
    user: int,
    message: Message,
    data: str,
    language_code: str | None = None,
    *,
    forged: bool = False,
) -> Message:
    """The user presses a button of the message (or forges one); the message once the bot
    has edited it."""
    before = _edits(server, user)
    if forged or language_code:
        assert forged or data in [offered for _, offered in _buttons(message)]
        _push_press(server, user, message, data, language_code)
    else:
        server.control.press_button(user, message.message_id, data)
    await eventually(lambda: _edits(server, user) == before + 1)
    return _shown(server, user, message.message_id)


def _grid(now: datetime, opens: int, closes: int, minutes: int, days: int) -> list[datetime]:
    """The slot starts after `now`, worked out here independently of the bot's code."""
    today = now.astimezone(ZONE).date()
    starts = []
    for day in (today + timedelta(days=n) for n in range(days)):
        for offset in range(opens * 60, closes * 60 - minutes + 1, minutes):
            local = datetime.combine(day, time(offset // 60, offset % 60), tzinfo=ZONE)
            if local > now:
                starts.append(local.astimezone(UTC))
    return starts


def _local(moment: datetime) -> datetime:
    return moment.astimezone(ZONE)


def _answered(server: TelegramServer) -> list[bool]:
    return [call.ok for call in server.control.calls(method="answerCallbackQuery")]


# The times of day /book is tried at, on the business's wall clock: before, at and after
# opening, with 6 and 5 half-hour slots left in the day (when the grid's consecutive slots
# first cross into the next day), around closing, and late in the evening.
TIMES_OF_DAY = ("00:00", "06:30", "09:00", "12:10", "13:40", "14:10", "16:45", "17:00", "23:59")


@pytest.mark.parametrize("time_of_day", TIMES_OF_DAY)
async def test_book_offers_the_free_slots_of_the_business_hours_in_its_time_zone(
    start_bot: StartBot, server: TelegramServer, owner: asyncpg.Connection, time_of_day: str
) -> None:
    now = datetime.combine(date(2031, 5, 6), time.fromisoformat(time_of_day), tzinfo=ZONE)
    # Half-hour slots, 16 a day: two whole days ahead already fill the 24 buttons.
    await _start(start_bot, owner, HOURS | {"slot_minutes": 30}, clock=lambda: now)
    server.control.send_text(USER, "/start")
    await eventually(lambda: len(_from_bot(server, USER)) == 1)
    user_id = await owner.fetchval("SELECT id FROM users WHERE telegram_id = $1", USER)
    grid = _grid(now, 9, 17, 30, 3)
    taken = grid[1]
    # Three slots in a row on one day, after the taken one and the cancelled one.
    first = next(n for n in range(3, len(grid)) if grid[n + 2] - grid[n] == timedelta(minutes=60))
    covered = set(grid[first : first + 3])
    # Bookings already made: one slot, one cancelled (its slot is free), and one of 70
    # minutes off the grid that covers parts of those three slots.
    long = grid[first] + timedelta(minutes=10)
    for starts_at, minutes, status in (
        (taken, 30, "booked"),
        (taken + timedelta(minutes=30), 30, "cancelled"),
        (long, 70, "confirmed"),
    ):
        await owner.execute(
            "INSERT INTO appointments (user_id, starts_at, ends_at, status) "
            "VALUES ($1, $2, $3, $4)",
            user_id,
            starts_at,
            starts_at + timedelta(minutes=minutes),
            status,
        )
    offer = await _command(server, USER, "/book")

    assert offer.text == f"Choose a time ({ZONE_NAME}):"
    shown = [_slot(data) for _, data in _buttons(offer)]
    assert shown == [s for s in grid if s not in covered | {taken}][:24]
    assert len(shown) == 24
    assert all(
        label == f"{_local(_slot(data)):%d.%m %H:%M}" and data.startswith("book:")
        for label, data in _buttons(offer)
    )
    assert offer.reply_markup is not None
    assert [len(row) for row in offer.reply_markup.inline_keyboard] == [3] * 8


async def test_a_press_books_the_slot_and_queues_its_reminder(
    start_bot: StartBot, server: TelegramServer, owner: asyncpg.Connection
) -> None:
    await _start(start_bot, owner)
    offer = await _command(server, USER, "/book")
    _, data = _buttons(offer)[-1]  # more than a day away: its reminder waits
    starts_at = _slot(data)
    done = await _press(server, USER, offer, data)

    assert done.text == text("en", Text.BOOK_DONE, starts_at=_local(starts_at), zone=ZONE_NAME)
    assert done.reply_markup is None
    assert _answered(server) == [True]
    row = await owner.fetchrow(
        "SELECT a.id, a.starts_at, a.ends_at, a.status::text, a.resource, u.telegram_id "
        "FROM appointments a JOIN users u ON u.id = a.user_id"
    )
    assert (row["starts_at"], row["ends_at"]) == (starts_at, starts_at + timedelta(hours=2))
    assert (row["status"], row["resource"], row["telegram_id"]) == ("booked", "default", USER)
    reminder = await owner.fetchrow(
        "SELECT chat_id, payload->>'text' AS text, status::text, available_at FROM outbox "
        "WHERE dedup_key = $1",
        f"reminder:{row['id']}",
    )
    assert (reminder["status"], reminder["chat_id"]) == ("pending", USER)
    assert reminder["text"] == text(
        "en", Text.REMINDER, starts_at=_local(starts_at), zone=ZONE_NAME
    )
    # An hour before (the default lead), give or take the moment between reading the clock
    # and writing the row.
    due = starts_at - timedelta(minutes=60)
    assert abs(reminder["available_at"] - due) < timedelta(minutes=1)
    # The slot is not offered again.
    again = await _command(server, USER, "/book")
    assert data not in [data for _, data in _buttons(again)]


async def test_a_reminder_already_due_is_sent_at_once(
    start_bot: StartBot, server: TelegramServer, owner: asyncpg.Connection
) -> None:
    # A ten-day lead: every slot of the next three days is closer than that.
    await _start(start_bot, owner, booking_reminder_minutes=10 * 24 * 60)
    offer = await _command(server, USER, "/book")
    _, data = _buttons(offer)[0]
    await _press(server, USER, offer, data)
    reminder = text("en", Text.REMINDER, starts_at=_local(_slot(data)), zone=ZONE_NAME)
    await eventually(lambda: reminder in [m.text for m in _from_bot(server, USER)])


async def test_ten_users_racing_for_one_slot_one_books_nine_get_fresh_slots(
    start_bot: StartBot, server: TelegramServer, owner: asyncpg.Connection
) -> None:
    await _start(start_bot, owner)
    users = [USER + n for n in range(10)]
    offered = await asyncio.gather(*(_command(server, user, "/book") for user in users))
    offers = {offer.chat.id: offer.message_id for offer in offered}
    _, contested = _buttons(offered[0])[-1]
    assert all(contested in [data for _, data in _buttons(offer)] for offer in offered)

    for user, message_id in offers.items():
        server.control.press_button(user, message_id, contested)
    await eventually(lambda: all(_edits(server, user) == 1 for user in users))

    assert await count(owner, "SELECT count(*) FROM appointments") == 1
    assert _answered(server) == [True] * 10
    results = {user: _shown(server, user, message_id) for user, message_id in offers.items()}
    done = text("en", Text.BOOK_DONE, starts_at=_local(_slot(contested)), zone=ZONE_NAME)
    taken = text("en", Text.BOOK_TAKEN) + "\n" + text("en", Text.BOOK_CHOOSE, zone=ZONE_NAME)
    assert sorted(result.text or "" for result in results.values()) == sorted([done] + [taken] * 9)
    winner = next(user for user, result in results.items() if result.text == done)
    holder = "SELECT u.telegram_id FROM appointments a JOIN users u ON u.id = a.user_id"
    assert await owner.fetchval(holder) == winner
    losers = [result for result in results.values() if result.text == taken]
    for result in losers:
        fresh = [data for _, data in _buttons(result)]
        assert fresh
        assert contested not in fresh
    # A loser books one of the fresh slots from the same message.
    _, other = _buttons(losers[0])[0]
    booked = await _press(server, losers[0].chat.id, losers[0], other)
    assert booked.text == text("en", Text.BOOK_DONE, starts_at=_local(_slot(other)), zone=ZONE_NAME)
    assert await count(owner, "SELECT count(*) FROM appointments") == 2
    assert await count(owner, "SELECT count(*) FROM outbox WHERE dedup_key LIKE 'reminder:%'") == 2


async def test_my_lists_bookings_and_cancelling_frees_the_slot_and_withdraws_the_reminder(
    start_bot: StartBot, server: TelegramServer, owner: asyncpg.Connection
) -> None:
    await _start(start_bot, owner)
    assert (await _command(server, USER, "/my")).text == text("en", Text.MY_NONE)
    offer = await _command(server, USER, "/book")
    _, data = _buttons(offer)[-1]
    starts_at = _local(_slot(data))
    await _press(server, USER, offer, data)
    appointment_id = await owner.fetchval("SELECT id FROM appointments")

    listing = await _command(server, USER, "/my")
    assert listing.text == (f"Your upcoming bookings ({ZONE_NAME}):\n- {starts_at:%d.%m.%Y %H:%M}")
    assert _buttons(listing) == [(f"Cancel {starts_at:%d.%m %H:%M}", f"cancel:{appointment_id}")]

    # Another user forging a press on this booking's id cancels nothing.
    other = USER + 1
    stranger = await _command(server, other, "/my")
    gone = await _press(server, other, stranger, f"cancel:{appointment_id}", forged=True)
    assert gone.text == text("en", Text.CANCEL_GONE) + "\n\n" + text("en", Text.MY_NONE)
    assert await owner.fetchval("SELECT status::text FROM appointments") == "booked"

    cancelled = await _press(server, USER, listing, f"cancel:{appointment_id}")
    assert cancelled.text == (
        text("en", Text.CANCELLED, starts_at=starts_at, zone=ZONE_NAME)
        + "\n\n"
        + text("en", Text.MY_NONE)
    )
    assert cancelled.reply_markup is None
    assert await owner.fetchval("SELECT status::text FROM appointments") == "cancelled"
    reminder = await owner.fetchval(
        "SELECT status::text FROM outbox WHERE dedup_key = $1", f"reminder:{appointment_id}"
    )
    assert reminder == "withdrawn"
    assert data in [data for _, data in _buttons(await _command(server, USER, "/book"))]
    # The same cancel button pressed again (an old copy of the list) finds nothing to cancel.
    again = await _press(server, USER, listing, f"cancel:{appointment_id}", forged=True)
    assert again.text == text("en", Text.CANCEL_GONE) + "\n\n" + text("en", Text.MY_NONE)
    assert _answered(server) == [True] * 4


async def test_past_misaligned_out_of_hours_and_forged_slots_are_gone(
    start_bot: StartBot, server: TelegramServer, owner: asyncpg.Connection
) -> None:
    # Twenty updates from one user in a moment: more than the throttle lets through.
    await _start(start_bot, owner, throttle_burst=100)
    today = datetime.now(ZONE).date()

    def at(day: date, hour: int, minute: int = 0) -> str:
        local = datetime.combine(day, time(hour, minute), tzinfo=ZONE)
        return f"book:{int(local.timestamp())}"

    tomorrow = today + timedelta(days=1)
    for data in (
        at(today - timedelta(days=1), 9),  # yesterday's first slot
        at(tomorrow, 10),  # between two slots
        at(tomorrow, 9, 1),
        at(tomorrow, 17),  # would end after closing
        at(tomorrow, 7),  # before opening
        at(today + timedelta(days=3), 9),  # past the three days offered
        "book:99999999999",
        "book:-3600",
        "book:12x",
        "book:",
    ):
        offer = await _command(server, USER, "/book")
        gone = await _press(server, USER, offer, data, forged=True)
        assert gone.text == text("en", Text.BOOK_GONE), data
        assert gone.reply_markup is None
    assert await count(owner, "SELECT count(*) FROM appointments") == 0
    assert _answered(server) == [True] * 10


async def test_a_stale_slot_pressed_again_sends_no_edit_that_changes_nothing(
    start_bot: StartBot, server: TelegramServer, owner: asyncpg.Connection
) -> None:
    bot = await start_bot(booking_days=DAYS)
    yesterday = datetime.now(UTC) - timedelta(days=1)
    stale = f"book:{int(yesterday.timestamp())}"
    offer = await _command(server, USER, "/book")
    gone = await _press(server, USER, offer, stale, forged=True)
    assert gone.text == text("en", Text.BOOK_GONE)

    # Pressed again: Telegram sends the message as it is now, which says so already.
    _push_press(server, USER, gone, stale, None)
    await eventually(lambda: len(_answered(server)) == 2)

    assert _answered(server) == [True, True]
    edits = server.control.calls(USER, "editMessageText")
    assert [call.ok for call in edits] == [True]
    assert _shown(server, USER, offer.message_id).text == text("en", Text.BOOK_GONE)
    refused = [
        sample
        for metric in bot.metrics.registry.collect()
        if metric.name == "bot_telegram_api_calls"
        for sample in metric.samples
        if sample.name.endswith("_total") and sample.labels["result"] != "ok" and sample.value
    ]
    assert refused == []


async def test_a_user_holds_at_most_the_allowed_number_of_bookings(
    start_bot: StartBot, server: TelegramServer, owner: asyncpg.Connection
) -> None:
    await _start(start_bot, owner, booking_max_per_user=2)
    offers = [await _command(server, USER, "/book") for _ in range(3)]
    slots = [data for _, data in _buttons(offers[0])[-3:]]
    for offer, data in zip(offers[:2], slots[:2], strict=True):
        await _press(server, USER, offer, data)
    limited = await _press(server, USER, offers[2], slots[2])
    assert limited.text == text("en", Text.BOOK_LIMIT, count=2)
    assert limited.reply_markup is None
    assert await count(owner, "SELECT count(*) FROM appointments") == 2
    # /book says so at once instead of offering slots.
    assert (await _command(server, USER, "/book")).text == text("en", Text.BOOK_LIMIT, count=2)
    # A slot of their own pressed again (on a copy of an offer from before its edit) shows
    # it booked, and adds nothing.
    again = await _press(server, USER, offers[2], slots[0], forged=True)
    assert again.text == text(
        "en", Text.BOOK_DONE, starts_at=_local(_slot(slots[0])), zone=ZONE_NAME
    )
    assert await count(owner, "SELECT count(*) FROM outbox") == 2


async def test_a_russian_user_books_in_russian(
    start_bot: StartBot, server: TelegramServer, owner: asyncpg.Connection
) -> None:
    await _start(start_bot, owner)
    offer = await _command(server, USER, "/book", "ru-RU")
    assert offer.text == f"Выберите время ({ZONE_NAME}):"
    _, data = _buttons(offer)[-1]
    starts_at = _local(_slot(data))
    done = await _press(server, USER, offer, data, "ru")
    assert done.text == text("ru", Text.BOOK_DONE, starts_at=starts_at, zone=ZONE_NAME)
    assert done.text.startswith("Вы записаны: ")
    payload = await owner.fetchval("SELECT payload->>'text' FROM outbox")
    assert payload == text("ru", Text.REMINDER, starts_at=starts_at, zone=ZONE_NAME)
    listing = await _command(server, USER, "/my", "ru")
    assert listing.text is not None and listing.text.startswith("Ваши предстоящие записи")
    assert _buttons(listing)[0][0] == f"Отменить {starts_at:%d.%m %H:%M}"


@pytest.fixture(params=MODES)
async def any_database(
    request: pytest.FixtureRequest, endpoints: dict[str, str], owner: asyncpg.Connection
) -> AsyncIterator[Database]:
    """A Database through PgBouncer in each mode the core supports (the bot's is modern)."""
    mode = str(request.param)
    settings = database_settings(bouncer_dsn(endpoints, mode), prepared_statements=mode == "modern")
    db = Database(settings, CollectorRegistry())
    try:
        yield db
    finally:
        await db.dispose()


async def test_a_conflicting_booking_leaves_the_update_transaction_usable(
    any_database: Database, owner: asyncpg.Connection
) -> None:
    starts = datetime(2035, 5, 5, 9, tzinfo=UTC)
    slot = (starts, starts + timedelta(hours=1))
    async with any_database.unit_of_work() as uow:
        first = await uow.users.upsert(801)
        await uow.appointments.book(first, *slot)
    async with any_database.unit_of_work() as uow:
        second = await uow.users.upsert(802)
        await uow.messages.log(second, Direction.IN, "/book")
        with pytest.raises(Conflict):
            await uow.appointments.book(second, *slot)
        # The same transaction goes on: it reads, books another slot and commits it all.
        assert await uow.appointments.busy(*slot) == [slot]
        await uow.appointments.book(second, slot[1], slot[1] + timedelta(hours=1))
        await uow.messages.log(second, Direction.OUT, "booked")
    assert await count(owner, "SELECT count(*) FROM appointments") == 2
    assert await count(owner, "SELECT count(*) FROM conversation_messages") == 2
