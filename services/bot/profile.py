"""What /profile shows: credits, upcoming bookings and open tickets, read through the core's
queries (the same "upcoming" as /mybookings, the same "open" as the staff's)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.core.db import UnitOfWork
from services.core.schema import Appointment

# Enough for a chat message; the admin API lists everything.
MAX_BOOKINGS_SHOWN = 5


@dataclass(frozen=True)
class Profile:
    credits: int
    bookings: list[Appointment]
    open_tickets: int


async def load_profile(uow: UnitOfWork, user_id: int, now: datetime) -> Profile:
    """As of `now`: a booking starting at `now` has begun, so it is no longer upcoming."""
    user = await uow.users.get(user_id)
    bookings = await uow.appointments.upcoming(user_id, now, limit=MAX_BOOKINGS_SHOWN)
    return Profile(user.credits, bookings, await uow.tickets.unfinished_count(user_id))
