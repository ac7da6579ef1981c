"""Bookings: /book offers free slots as buttons, a press books one, /my lists them with
cancel buttons, and each booking's reminder waits in the outbox.

A press answers by editing the message it was pressed on: the offer becomes the outcome
(booked, taken with fresh slots, gone, over the limit), and a /my list becomes the
cancellation with the bookings left. Who gets a contested slot is decided by the database's
exclusion constraint, never by an earlier read. The business hours are the runtime setting
`booking.hours` (services/core/schedule.py), read for each update, so an admin's change
applies at once."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.methods import AnswerCallbackQuery, EditMessageText
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from services.core.db import UnitOfWork
from services.core.errors import Conflict
from services.core.repositories.booking import reminder_key
from services.core.schedule import BusinessHours, Clock, business_hours, free_slots

from .replies import Replies
from .settings import BotSettings
from .texts import Text, text

log = logging.getLogger(__name__)

BOOK = "book:"
CANCEL = "cancel:"
# A slot's start as a Unix time; eleven digits reach far past any horizon, and keep a forged
# value inside what datetime can represent.
BOOK_DATA = re.compile(re.escape(BOOK) + r"([0-9]{1,11})")
CANCEL_DATA = re.compile(re.escape(CANCEL) + r"([1-9][0-9]{0,17})")
# A keyboard a phone shows without scrolling far: 8 rows of 3.
SLOTS_PER_ROW = 3
MAX_SLOTS_SHOWN = 24
# /my lists at most this many bookings (the per-user cap normally keeps it far lower).
MAX_LISTED = 20
SLOT_BUTTON = "{:%d.%m %H:%M}"
LISTED = "- {:%d.%m.%Y %H:%M}"


@dataclass(frozen=True)
class Calendar:
    """The slot grid: the business hours' slots from today for `days` days."""

    hours: BusinessHours
    days: int

    @property
    def step(self) -> timedelta:
        return self.hours.step

    @property
    def zone(self) -> str:
        return self.hours.timezone

    def horizon(self, now: datetime) -> list[date]:
        """The days offered: today on the business's wall clock and the ones after it."""
        today = now.astimezone(self.hours.zone).date()
        return [today + timedelta(days=n) for n in range(self.days)]

    def is_slot(self, start: datetime, now: datetime) -> bool:
        """Whether `start` is a slot of the grid that can still be booked."""
        day = start.astimezone(self.hours.zone).date()
        return start > now and day in self.horizon(now) and start in self.hours.day_slots(day)

    def local(self, moment: datetime) -> datetime:
        return self.hours.local(moment)


async def current_hours(uow: UnitOfWork) -> BusinessHours:
    """The business hours; the defaults, logged as an error, when the stored setting does not
    fit (only a value written around the admin API's check can)."""
    try:
        return await business_hours(uow)
    except Conflict as error:
        log.error("%s; using the default business hours", error)
        return BusinessHours()


class Booking:
    def __init__(self, settings: BotSettings, clock: Clock) -> None:
        self.settings = settings
        # Read once per update, so every check in it sees the same moment.
        self._clock = clock

    async def _calendar(self, uow: UnitOfWork) -> Calendar:
        return Calendar(await current_hours(uow), self.settings.booking_days)

    async def _free(self, uow: UnitOfWork, calendar: Calendar, now: datetime) -> list[datetime]:
        """The first free slot starts of the days offered."""
        days = calendar.horizon(now)
        return await free_slots(uow, calendar.hours, days, now, limit=MAX_SLOTS_SHOWN)

    def _offer(
        self, language: str, calendar: Calendar, free: list[datetime]
    ) -> tuple[str, InlineKeyboardMarkup | None]:
        if not free:
            return text(language, Text.BOOK_NONE, days=calendar.days), None
        buttons = [
            InlineKeyboardButton(
                text=SLOT_BUTTON.format(calendar.local(start)),
                callback_data=f"{BOOK}{int(start.timestamp())}",
            )
            for start in free
        ]
        rows = [buttons[i : i + SLOTS_PER_ROW] for i in range(0, len(buttons), SLOTS_PER_ROW)]
        choose = text(language, Text.BOOK_CHOOSE, zone=calendar.zone)
        return choose, InlineKeyboardMarkup(inline_keyboard=rows)

    def _limit(self, language: str, held: int) -> str | None:
        """BOOK_LIMIT when the user holds as many upcoming bookings as allowed, else None."""
        if held < self.settings.booking_max_per_user:
            return None
        return text(language, Text.BOOK_LIMIT, count=held)

    async def book(
        self,
        message: Message,
        uow: UnitOfWork,
        user_id: int | None,
        language: str,
        replies: Replies,
    ) -> None:
        if user_id is None:
            return
        now = self._clock()
        # Offered nothing they could not book.
        limit = self._limit(language, len(await uow.appointments.upcoming(user_id, now)))
        if limit is not None:
            replies.add(message.chat.id, limit)
            return
        calendar = await self._calendar(uow)
        free = await self._free(uow, calendar, now)
        replies.add(message.chat.id, *self._offer(language, calendar, free))

    async def choose(
        self,
        query: CallbackQuery,
        uow: UnitOfWork,
        user_id: int | None,
        language: str,
        replies: Replies,
    ) -> None:
        replies.call(AnswerCallbackQuery(callback_query_id=query.id))
        if user_id is None:  # our buttons are only in private chats
            return
        now = self._clock()
        calendar = await self._calendar(uow)
        match = BOOK_DATA.fullmatch(query.data or "")
        start = datetime.fromtimestamp(int(match[1]), UTC) if match else None
        if start is None or not calendar.is_slot(start, now):
            _show(query, replies, text(language, Text.BOOK_GONE))
            return
        held = await uow.appointments.upcoming(user_id, now, lock=True)
        if any(appointment.starts_at == start for appointment in held):
            # Pressed twice (a double tap, or two offers): it is theirs already, and its
            # reminder was queued with it.
            _show(query, replies, self._done(language, calendar, start))
            return
        limit = self._limit(language, len(held))
        if limit is not None:
            _show(query, replies, limit)
            return
        try:
            appointment = await uow.appointments.book(user_id, start, start + calendar.step)
        except Conflict:
            # Someone else's booking committed first. Read after the conflict, the free slots
            # no longer include it.
            free = await self._free(uow, calendar, now)
            offer, markup = self._offer(language, calendar, free)
            taken = text(language, Text.BOOK_TAKEN)
            _show(query, replies, f"{taken}\n{offer}", markup)
            return
        assert appointment.id is not None  # flushed
        await self._remind(
            uow, query.from_user.id, user_id, language, calendar, appointment.id, start, now
        )
        _show(query, replies, self._done(language, calendar, start))

    def _done(self, language: str, calendar: Calendar, start: datetime) -> str:
        local = calendar.local(start)
        return text(language, Text.BOOK_DONE, starts_at=local, zone=calendar.zone)

    async def _remind(
        self,
        uow: UnitOfWork,
        chat_id: int,
        user_id: int,
        language: str,
        calendar: Calendar,
        appointment_id: int,
        start: datetime,
        now: datetime,
    ) -> None:
        local = calendar.local(start)
        due = start - timedelta(minutes=self.settings.booking_reminder_minutes) - now
        await uow.outbox.enqueue(
            chat_id,
            text(language, Text.REMINDER, starts_at=local, zone=calendar.zone),
            user_id=user_id,
            dedup_key=reminder_key(appointment_id),
            # Booked less than the reminder's lead before it starts: reminded at once.
            delay=due if due > timedelta(0) else None,
        )

    async def _listing(
        self, uow: UnitOfWork, calendar: Calendar, user_id: int, language: str, now: datetime
    ) -> tuple[str, InlineKeyboardMarkup | None]:
        """The user's upcoming bookings with a cancel button each, or MY_NONE."""
        held = await uow.appointments.upcoming(user_id, now, limit=MAX_LISTED)
        if not held:
            return text(language, Text.MY_NONE), None
        lines = "\n".join(LISTED.format(calendar.local(a.starts_at)) for a in held)
        buttons = [
            [
                InlineKeyboardButton(
                    text=text(language, Text.CANCEL_BUTTON, starts_at=calendar.local(a.starts_at)),
                    callback_data=f"{CANCEL}{a.id}",
                )
            ]
            for a in held
        ]
        listed = text(language, Text.MY_LIST, zone=calendar.zone, bookings=lines)
        return listed, InlineKeyboardMarkup(inline_keyboard=buttons)

    async def my(
        self,
        message: Message,
        uow: UnitOfWork,
        user_id: int | None,
        language: str,
        replies: Replies,
    ) -> None:
        if user_id is None:
            return
        calendar = await self._calendar(uow)
        listed = await self._listing(uow, calendar, user_id, language, self._clock())
        replies.add(message.chat.id, *listed)

    async def cancel(
        self,
        query: CallbackQuery,
        uow: UnitOfWork,
        user_id: int | None,
        language: str,
        replies: Replies,
    ) -> None:
        replies.call(AnswerCallbackQuery(callback_query_id=query.id))
        if user_id is None:
            return
        now = self._clock()
        match = CANCEL_DATA.fullmatch(query.data or "")
        starts_at = await _cancel(uow, int(match[1]), user_id, now) if match else None
        calendar = await self._calendar(uow)
        if starts_at is None:
            outcome = text(language, Text.CANCEL_GONE)
        else:
            local = calendar.local(starts_at)
            outcome = text(language, Text.CANCELLED, starts_at=local, zone=calendar.zone)
        # The list under the outcome stays current: what is left, with its buttons.
        listed, markup = await self._listing(uow, calendar, user_id, language, now)
        _show(query, replies, f"{outcome}\n\n{listed}", markup)


async def _cancel(
    uow: UnitOfWork, appointment_id: int, user_id: int, now: datetime
) -> datetime | None:
    """Cancels the user's upcoming booking and takes back its reminder; its start, or None
    when it is not theirs, not live or not in the future."""
    starts_at = await uow.appointments.cancel_upcoming(appointment_id, user_id, now)
    if starts_at is not None:
        await uow.outbox.withdraw(reminder_key(appointment_id))
    return starts_at


def _show(
    query: CallbackQuery, replies: Replies, said: str, markup: InlineKeyboardMarkup | None = None
) -> None:
    """The pressed message becomes `said` (its keyboard replaced by `markup`, or gone)."""
    message = query.message
    if message is None:  # a button of an inline-mode message: never one of ours
        replies.add(query.from_user.id, said, markup)
        return
    if isinstance(message, Message) and message.text == said and message.reply_markup == markup:
        # It says so already (the same stale press again): Telegram refuses an edit that
        # changes nothing.
        return
    replies.call(
        EditMessageText(
            chat_id=message.chat.id, message_id=message.message_id, text=said, reply_markup=markup
        )
    )


def router(settings: BotSettings, clock: Clock) -> Router:
    booking = Booking(settings, clock)
    router = Router(name="booking")
    router.message.register(booking.book, Command("book"), F.chat.type == "private")
    router.message.register(booking.my, Command("my"), F.chat.type == "private")
    router.callback_query.register(booking.choose, F.data.startswith(BOOK))
    router.callback_query.register(booking.cancel, F.data.startswith(CANCEL))
    return router
