"""What /profile shows: credits, upcoming bookings and open tickets."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlmodel import col

from services.core.db import UnitOfWork
from services.core.schema import Appointment, AppointmentStatus, Ticket, TicketStatus

# Enough for a chat message; the admin API lists everything.
MAX_BOOKINGS_SHOWN = 5
UPCOMING = (AppointmentStatus.BOOKED, AppointmentStatus.CONFIRMED)
OPEN_TICKETS = (TicketStatus.OPEN, TicketStatus.IN_PROGRESS)


@dataclass(frozen=True)
class Profile:
    credits: int
    bookings: list[Appointment]
    open_tickets: int


async def load_profile(uow: UnitOfWork, user_id: int) -> Profile:
    user = await uow.users.get(user_id)
    bookings = await uow.session.execute(
        sa.select(Appointment)
        .where(
            col(Appointment.user_id) == user_id,
            col(Appointment.starts_at) >= datetime.now(UTC),
            col(Appointment.status).in_(UPCOMING),
        )
        .order_by(col(Appointment.starts_at))
        .limit(MAX_BOOKINGS_SHOWN)
    )
    tickets = await uow.session.execute(
        sa.select(sa.func.count())
        .select_from(Ticket)
        .where(col(Ticket.user_id) == user_id, col(Ticket.status).in_(OPEN_TICKETS))
    )
    return Profile(user.credits, list(bookings.scalars()), int(tickets.scalar_one()))
