"""What a user sees: /profile, the fallback answer and the polite throttle."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg

from services.telegram_api import TelegramServer

from .conftest import StartBot, count, eventually

USER = 5151


async def test_profile_shows_credits_upcoming_bookings_and_open_tickets(
    start_bot: StartBot, server: TelegramServer, owner: asyncpg.Connection
) -> None:
    bot = await start_bot()
    server.control.send_text(USER, "/start")
    await eventually(lambda: len(bot.texts(USER)) == 1)
    user_id = await owner.fetchval(
        "UPDATE users SET credits = 7 WHERE telegram_id = $1 RETURNING id", USER
    )
    soon = datetime(2100, 1, 2, 10, 0, tzinfo=UTC)
    past = datetime.now(UTC) - timedelta(days=3)
    for starts_at, status in (
        (soon, "booked"),
        (past, "booked"),
        (soon + timedelta(1), "cancelled"),
    ):
        await owner.execute(
            "INSERT INTO appointments (user_id, starts_at, ends_at, status) "
            "VALUES ($1, $2, $3, $4)",
            user_id,
            starts_at,
            starts_at + timedelta(hours=1),
            status,
        )
    for status in ("open", "in_progress", "closed"):
        await owner.execute(
            "INSERT INTO tickets (user_id, status, subject) VALUES ($1, $2, 'help')",
            user_id,
            status,
        )
    server.control.send_text(USER, "/profile")
    await eventually(lambda: len(bot.texts(USER)) == 2)
    assert bot.texts(USER)[1] == (
        "Credits: 7\nOpen tickets: 2\nUpcoming bookings:\n- 2100-01-02 10:00 UTC (booked)"
    )


async def test_profile_lists_a_booking_as_upcoming_until_it_begins(
    start_bot: StartBot, server: TelegramServer, owner: asyncpg.Connection
) -> None:
    """/profile's "upcoming" is /mybookings' (the core's one query): a booking starting at
    this very moment has begun, and can no longer be cancelled, so it is not listed."""
    now = datetime(2100, 3, 4, 9, 0, tzinfo=UTC)
    bot = await start_bot(clock=lambda: now)
    server.control.send_text(USER, "/start")
    await eventually(lambda: len(bot.texts(USER)) == 1)
    user_id = await owner.fetchval("SELECT id FROM users WHERE telegram_id = $1", USER)
    for starts_at in (now, now + timedelta(minutes=30)):
        await owner.execute(
            "INSERT INTO appointments (user_id, starts_at, ends_at, status) "
            "VALUES ($1, $2, $3, 'confirmed')",
            user_id,
            starts_at,
            starts_at + timedelta(minutes=30),
        )
    server.control.send_text(USER, "/profile")
    await eventually(lambda: len(bot.texts(USER)) == 2)
    assert bot.texts(USER)[1].endswith("Upcoming bookings:\n- 2100-03-04 09:30 UTC (confirmed)"), (
        bot.texts(USER)[1]
    )


async def test_anything_else_gets_a_pointer_to_help(
    start_bot: StartBot, server: TelegramServer
) -> None:
    bot = await start_bot()
    server.control.send_text(USER, "what can you do?")
    await eventually(lambda: len(bot.texts(USER)) == 1)
    assert "/help" in bot.texts(USER)[0]


async def test_a_flooding_user_is_told_once_to_slow_down(
    start_bot: StartBot, server: TelegramServer, owner: asyncpg.Connection
) -> None:
    bot = await start_bot(throttle_burst=2, throttle_per_minute=1)
    for n in range(5):
        server.control.send_text(USER, f"message {n}")
    server.control.send_text(USER + 1, "/help")  # another user is not slowed down
    await eventually(lambda: bot.updates("throttled") + bot.updates("handled") == 6)
    assert len(bot.texts(USER + 1)) == 1
    answers = bot.texts(USER)
    assert len(answers) == 3
    assert answers[2].startswith("You are sending messages too fast")
    # Every message is still in the conversation log, answered or not.
    inbound = "SELECT count(*) FROM conversation_messages WHERE direction = 'in'"
    assert await count(owner, inbound) == 6


async def test_a_throttled_button_press_is_answered_so_it_stops_spinning(
    start_bot: StartBot, server: TelegramServer, owner: asyncpg.Connection
) -> None:
    await owner.execute(
        "INSERT INTO products (code, title, description, price_stars, credits) "
        "VALUES ('pack', 'Pack', 'Ten credits', 5, 10)"
    )
    bot = await start_bot(throttle_burst=2, throttle_per_minute=1)
    server.control.send_text(USER, "/buy")
    await eventually(lambda: len(bot.texts(USER)) == 1)
    offer = server.control.messages(USER)[-1]
    assert offer.reply_markup is not None
    product = offer.reply_markup.inline_keyboard[0][0].callback_data
    assert product is not None
    for _ in range(2):  # the second press is over the limit
        server.control.press_button(USER, offer.message_id, product)
    await eventually(lambda: len(server.control.calls(method="answerCallbackQuery")) == 2)
    answers = server.control.calls(method="answerCallbackQuery")
    assert [call.ok for call in answers] == [True, True]
    assert "text" not in answers[0].params
    assert str(answers[1].params["text"]).startswith("You are sending messages too fast")
    await eventually(lambda: bot.updates("throttled", kind="callback_query") == 1)
    assert len(server.control.calls(USER, "sendInvoice")) == 1
