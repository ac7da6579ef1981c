"""Business hours: when appointments can be booked. One runtime setting, `booking.hours`,
read by the bot's /book and the admin API's free slots, and changed by admins through the
admin API without a restart."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .db import UnitOfWork
from .errors import Conflict
from .schema import RuntimeSetting

HOURS_SETTING = "booking.hours"


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
