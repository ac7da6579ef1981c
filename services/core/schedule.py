"""Business hours: when appointments can be booked. One runtime setting, `booking.hours`,
read by the bot's /book and the admin API's free slots, and changed by admins through the
admin API without a restart; and which of their slots are free, asked by both.

Nothing here reads the clock: callers pass `now`, so a test decides what time it is."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from itertools import islice
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .db import UnitOfWork
from .errors import Conflict
from .schema import RuntimeSetting

HOURS_SETTING = "booking.hours"

# What time it is: the system's clock in the services, one a test sets in the tests.
Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


class BusinessHours(BaseModel):
    """Each day's opening hours on the business's wall clock, cut into slots of one length."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    open: time = time(9)
    close: time = time(18)
    slot_minutes: int = Field(60, ge=5, le=24 * 60)
    # An IANA name ("Europe/Berlin"); the hours are local time there.
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"unknown time zone {value!r}: use an IANA name") from error
        return value

    @model_validator(mode="after")
    def _opens_before_closing(self) -> BusinessHours:
        if self.close <= self.open:
            raise ValueError("close must be later than open")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def step(self) -> timedelta:
        return timedelta(minutes=self.slot_minutes)

    def day_slots(self, day: date) -> Iterator[datetime]:
        """The day's slot starts, in UTC. Counted on the wall clock, so a day with a clock
        change keeps its business hours."""
        start = datetime.combine(day, self.open)
        closes = datetime.combine(day, self.close)
        while start + self.step <= closes:
            yield start.replace(tzinfo=self.zone).astimezone(UTC)
            start += self.step

    def local(self, moment: datetime) -> datetime:
        return moment.astimezone(self.zone)


async def business_hours(uow: UnitOfWork) -> BusinessHours:
    """The hours in the runtime setting, or the defaults when it is not set. A stored value
    that does not fit (written around the admin API's check) is a Conflict naming it."""
    setting = await uow.session.get(RuntimeSetting, HOURS_SETTING)
    if setting is None:
        return BusinessHours()
    try:
        return BusinessHours.model_validate(setting.value)
    except ValidationError as error:
        message = error.errors()[0]["msg"]
        raise Conflict(f"runtime setting {HOURS_SETTING} is invalid: {message}") from error


async def free_slots(
    uow: UnitOfWork,
    hours: BusinessHours,
    days: Iterable[date],
    now: datetime,
    *,
    resource: str = "default",
    limit: int | None = None,
) -> list[datetime]:
    """The starts of the free slots of `days`, in order (at most `limit`): still ahead of
    `now` (a slot that has begun or passed is never free, whatever the day asked for) and
    overlapped by no live appointment."""
    starts = [start for day in days for start in hours.day_slots(day) if start > now]
    if not starts:
        return []
    busy = await uow.appointments.busy(starts[0], starts[-1] + hours.step, resource)
    return list(islice(_unbooked(starts, hours.step, busy), limit))


def _unbooked(
    starts: list[datetime], step: timedelta, busy: list[tuple[datetime, datetime]]
) -> Iterator[datetime]:
    """The starts whose slot no busy interval overlaps. Both lists are in start order, so
    one pass over each does (what ended before a slot cannot touch a later one)."""
    first = 0
    for start in starts:
        end = start + step
        while first < len(busy) and busy[first][1] <= start:
            first += 1
        for taken, ends in islice(busy, first, None):
            if taken >= end:  # it, and every one after it, starts after this slot
                yield start
                break
            if ends > start:  # overlaps
                break
        else:
            yield start
