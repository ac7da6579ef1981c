"""Appointments: the exclusion constraint decides who gets a contested slot."""

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlmodel import col

from ..errors import NotFound, translate
from ..schema import Appointment, AppointmentStatus, User
from .base import Repository, checked

# The statuses that hold a slot (the exclusion constraint's LIVE_APPOINTMENT).
LIVE = (AppointmentStatus.BOOKED, AppointmentStatus.CONFIRMED, AppointmentStatus.COMPLETED)
# The statuses of a booking its user still expects to happen and may cancel.
UPCOMING = (AppointmentStatus.BOOKED, AppointmentStatus.CONFIRMED)


def reminder_key(appointment_id: int) -> str:
    """The outbox dedup key of an appointment's reminder: queued by the bot when it is
    booked, withdrawn by whoever cancels it."""
    return f"reminder:{appointment_id}"


class AppointmentRepository(Repository):
    async def book(
        self, user_id: int, starts_at: datetime, ends_at: datetime, resource: str = "default"
    ) -> Appointment:
        """Books the slot; Conflict if a live appointment overlaps it. The database decides
        (concurrent bookings of one slot wait for each other at the insert), and the insert
        runs in a savepoint, so after a Conflict the caller's transaction goes on: the bot
        offers other slots in the same update."""
        values = checked(
            Appointment, user_id=user_id, starts_at=starts_at, ends_at=ends_at, resource=resource
        )
        appointment = Appointment(**values.model_dump(exclude_unset=True))
        try:
            async with self.session.begin_nested():
                self.session.add(appointment)
                await self.session.flush()
        except sa_exc.DBAPIError as error:
            translated = translate(error)
            if translated is None:
                raise
            raise translated from error
        return appointment

    async def get(self, appointment_id: int, *, lock: bool = False) -> Appointment:
        appointment = await self.session.get(Appointment, appointment_id, with_for_update=lock)
        if appointment is None:
            raise NotFound("appointment", appointment_id)
        return appointment

    async def search(
        self,
        *,
        starts_from: datetime | None = None,
        starts_to: datetime | None = None,
        status: AppointmentStatus | None = None,
        limit: int,
    ) -> list[Appointment]:
        """Appointments in start order; each filter given narrows them."""
        query = sa.select(Appointment)
        if starts_from is not None:
            query = query.where(col(Appointment.starts_at) >= starts_from)
        if starts_to is not None:
            query = query.where(col(Appointment.starts_at) < starts_to)
        if status is not None:
            query = query.where(col(Appointment.status) == status)
        query = query.order_by(col(Appointment.starts_at), col(Appointment.id)).limit(limit)
        return list((await self.session.execute(query)).scalars())

    async def set_status(self, appointment: Appointment, status: AppointmentStatus) -> Appointment:
        """The appointment with its new status, as the database has it now."""
        appointment.status = status
        return await self.save(appointment)

    async def cancel(self, appointment_id: int) -> Appointment:
        """Cancels the appointment (its slot becomes free), whatever its status."""
        return await self.set_status(await self.get(appointment_id), AppointmentStatus.CANCELLED)

    async def cancel_upcoming(
        self, appointment_id: int, user_id: int, after: datetime
    ) -> datetime | None:
        """Cancels the user's own booking if it is still upcoming and starts after `after`
        (one statement, so two presses cannot both cancel it); its start, or None when there
        was nothing to cancel."""
        result = await self.session.execute(
            sa.update(Appointment)
            .where(
                col(Appointment.id) == appointment_id,
                col(Appointment.user_id) == user_id,
                col(Appointment.status).in_(UPCOMING),
                col(Appointment.starts_at) > after,
            )
            .values(status=AppointmentStatus.CANCELLED)
            .returning(col(Appointment.starts_at))
            .execution_options(synchronize_session=False)
        )
        starts_at: datetime | None = result.scalar_one_or_none()
        return starts_at

    async def for_user(self, user_id: int) -> list[Appointment]:
        result = await self.session.execute(
            sa.select(Appointment)
            .where(col(Appointment.user_id) == user_id)
            .order_by(col(Appointment.starts_at))
        )
        return list(result.scalars())

    async def upcoming(
        self, user_id: int, after: datetime, *, limit: int | None = None, lock: bool = False
    ) -> list[Appointment]:
        """The user's upcoming bookings starting after `after`, soonest first. With `lock`,
        the user's row is locked first, so one user's concurrent bookings are read one after
        the other and a per-user cap holds."""
        if lock:
            await self.session.execute(
                sa.select(col(User.id)).where(col(User.id) == user_id).with_for_update()
            )
        result = await self.session.execute(
            sa.select(Appointment)
            .where(
                col(Appointment.user_id) == user_id,
                col(Appointment.status).in_(UPCOMING),
                col(Appointment.starts_at) > after,
            )
            .order_by(col(Appointment.starts_at), col(Appointment.id))
            .limit(limit)
        )
        return list(result.scalars())

    async def busy(
        self, starts: datetime, ends: datetime, resource: str = "default"
    ) -> list[tuple[datetime, datetime]]:
        """(start, end) of the live appointments of the resource overlapping [starts, ends)."""
        result = await self.session.execute(
            sa.select(col(Appointment.starts_at), col(Appointment.ends_at))
            .where(
                col(Appointment.resource) == resource,
                col(Appointment.status).in_(LIVE),
                col(Appointment.starts_at) < ends,
                col(Appointment.ends_at) > starts,
            )
            .order_by(col(Appointment.starts_at))
        )
        return [(row.starts_at, row.ends_at) for row in result]
