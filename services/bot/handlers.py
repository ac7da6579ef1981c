"""The bot's commands. Handlers get the update's unit of work (`uow`), the user's row id
(`user_id`, None outside private chats), their catalogue (`language`) and the reply collector
(`replies`) from processing.py; they never call the Bot API themselves, except to create a
support topic (support.py, which also gets `database` to store the topic in a transaction of
its own). Each flow has its own router: booking.py, payments.py,
support.py (users) and support_staff.py (the staff group)."""

from __future__ import annotations

from functools import partial

from aiogram import F, Router
from aiogram.filters import Command, CommandStart
from aiogram.types import Message

from services.core.db import UnitOfWork
from services.core.schedule import Clock, system_clock

from . import booking, payments, support, support_staff
from .profile import load_profile
from .replies import Replies
from .settings import BotSettings
from .texts import Text, commands, text


async def start(message: Message, replies: Replies, language: str) -> None:
    # The user row was registered or refreshed by the update's one upsert (processing.py).
    name = message.from_user.first_name if message.from_user else ""
    replies.add(message.chat.id, text(language, Text.GREETING, name=name))


async def help_(message: Message, replies: Replies, language: str) -> None:
    lines = "\n".join(f"/{command} - {description}" for command, description in commands(language))
    replies.add(message.chat.id, text(language, Text.HELP, commands=lines))


async def profile(
    message: Message,
    replies: Replies,
    language: str,
    uow: UnitOfWork,
    user_id: int | None,
    clock: Clock,
) -> None:
    if user_id is None:  # a channel post or a message without a sender
        return
    shown = await load_profile(uow, user_id, clock())
    hours = await booking.current_hours(uow)
    bookings = "\n".join(
        text(
            language,
            Text.BOOKING,
            starts_at=hours.local(booking.starts_at),
            zone=hours.timezone,
            status=booking.status.value,
        )
        for booking in shown.bookings
    )
    replies.add(
        message.chat.id,
        text(
            language,
            Text.PROFILE,
            credits=shown.credits,
            tickets=shown.open_tickets,
            bookings=bookings or text(language, Text.NO_BOOKINGS),
        ),
    )


async def unknown(message: Message, replies: Replies, language: str) -> None:
    replies.add(message.chat.id, text(language, Text.UNKNOWN))


def create_router(settings: BotSettings, clock: Clock = system_clock) -> Router:
    """A new router each time: aiogram attaches a router to one dispatcher only. `clock` tells
    the bookings and /profile what time it is (a test sets it)."""
    router = Router(name="commands")
    router.message.register(start, CommandStart())
    router.message.register(help_, Command("help"))
    router.message.register(partial(profile, clock=clock), Command("profile"))
    router.include_routers(
        booking.router(settings, clock),
        payments.router(settings),
        support.router(settings),
        support_staff.router(settings),
    )
    # Last: aiogram tries a router's own handlers before its sub-routers'.
    fallback = Router(name="fallback")
    fallback.message.register(unknown, F.chat.type == "private")
    router.include_router(fallback)
    return router
