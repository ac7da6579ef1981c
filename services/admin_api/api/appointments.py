"""Appointments: list by date range and status, confirm, cancel (the user is told through
the outbox), and the free slots of a day."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from services.core import schedule
from services.core.errors import Conflict
from services.core.notices import Notice
from services.core.repositories.booking import reminder_key
from services.core.schedule import business_hours
from services.core.schema import Appointment, AppointmentStatus

from .. import audit
from ..problems import problem_responses
from ..schemas import NO_NUL, AppointmentOut
from .deps import DatabaseDep, Id, Operator, Viewer

router = APIRouter(prefix="/appointments", tags=["appointments"])
CANCELLABLE = (AppointmentStatus.BOOKED, AppointmentStatus.CONFIRMED)


class Slot(BaseModel):
    starts_at: datetime
    ends_at: datetime


@router.get("", response_model=list[AppointmentOut], responses=problem_responses(422))
async def list_appointments(
    database: DatabaseDep,
    _: Viewer,
    starts_from: Annotated[datetime | None, Query(description="Starting at or after")] = None,
    starts_to: Annotated[datetime | None, Query(description="Starting before")] = None,
    status: AppointmentStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[Appointment]:
    """Appointments in start order."""
    async with database.unit_of_work() as uow:
        return await uow.appointments.search(
            starts_from=starts_from, starts_to=starts_to, status=status, limit=limit
        )


@router.get("/free-slots", response_model=list[Slot], responses=problem_responses(409, 422))
async def free_slots(
    database: DatabaseDep,
    _: Viewer,
    day: date,
    resource: Annotated[str, Query(max_length=64, pattern=NO_NUL)] = "default",
) -> list[Slot]:
    """Slots of the day (business hours from the `booking.hours` setting, in its time zone;
    the bot's /book offers the same) that have not begun and that no live appointment
    overlaps."""
    async with database.unit_of_work() as uow:
        hours = await business_hours(uow)
        now = datetime.now(UTC)
        starts = await schedule.free_slots(uow, hours, [day], now, resource=resource)
    return [Slot(starts_at=start, ends_at=start + hours.step) for start in starts]


@router.post(
    "/{appointment_id}/confirm",
    response_model=AppointmentOut,
    responses=problem_responses(404, 409),
)
async def confirm_appointment(
    database: DatabaseDep, who: Operator, appointment_id: Id
) -> Appointment:
    """A booked appointment becomes confirmed."""
    async with database.unit_of_work() as uow:
        appointment = await uow.appointments.get(appointment_id, lock=True)
        if appointment.status != AppointmentStatus.BOOKED:
            raise Conflict(f"appointment {appointment_id} is {appointment.status}")
        await uow.appointments.set_status(appointment, AppointmentStatus.CONFIRMED)
        audit.record(
            uow,
            who,
            "appointment.confirm",
            "appointment",
            appointment_id,
            _status("booked", "confirmed"),
        )
    return appointment


def _status(was: str, now: str) -> dict[str, Any]:
    return {"status": [was, now]}


@router.post(
    "/{appointment_id}/cancel", response_model=AppointmentOut, responses=problem_responses(404, 409)
)
async def cancel_appointment(
    database: DatabaseDep, who: Operator, appointment_id: Id
) -> Appointment:
    """Cancels the appointment (its slot becomes free) and tells the user through the outbox."""
    async with database.unit_of_work() as uow:
        appointment = await uow.appointments.get(appointment_id, lock=True)
        if appointment.status not in CANCELLABLE:
            raise Conflict(f"appointment {appointment_id} is {appointment.status}")
        was = appointment.status
        appointment = await uow.appointments.cancel(appointment_id)
        await uow.outbox.withdraw(reminder_key(appointment_id))  # queued by the bot at booking
        hours = await business_hours(uow)
        when = {
            "starts_at": f"{hours.local(appointment.starts_at):%d.%m.%Y %H:%M}",
            "zone": hours.timezone,
        }
        await uow.outbox.tell(
            await uow.users.get(appointment.user_id),
            Notice.BOOKING_CANCELLED,
            when,
            dedup_key=f"appointment-cancelled:{appointment_id}",
        )
        audit.record(
            uow, who, "appointment.cancel", "appointment", appointment_id, _status(was, "cancelled")
        )
    return appointment
