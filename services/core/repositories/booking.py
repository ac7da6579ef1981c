"""Appointments: the exclusion constraint decides who gets a contested slot."""

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import col

from ..errors import NotFound
from ..schema import Appointment, AppointmentStatus
from .base import Repository, checked


class AppointmentRepository(Repository):
    async def book(
        self, user_id: int, starts_at: datetime, ends_at: datetime, resource: str = "default"
    ) -> Appointment:
        """Books the slot; Conflict if a live appointment overlaps it (raised when the unit
        of work flushes, so concurrent bookings are decided by the database, not by a read)."""
        values = checked(
            Appointment, user_id=user_id, starts_at=starts_at, ends_at=ends_at, resource=resource
        )
        appointment = Appointment(**values.model_dump(exclude_unset=True))
        self.session.add(appointment)
        await self.session.flush()
        return appointment

    async def cancel(self, appointment_id: int) -> Appointment:
        appointment = await self.session.get(Appointment, appointment_id)
        if appointment is None:
            raise NotFound("appointment", appointment_id)
        appointment.status = AppointmentStatus.CANCELLED
        appointment.updated_at = sa.func.now()  # type: ignore[assignment]
        await self.session.flush()
        return appointment

    async def for_user(self, user_id: int) -> list[Appointment]:
        result = await self.session.execute(
            sa.select(Appointment)
            .where(col(Appointment.user_id) == user_id)
            .order_by(col(Appointment.starts_at))
        )
        return list(result.scalars())
