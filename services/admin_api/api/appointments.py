"""Appointments: list by date range and status, confirm, cancel (the user is told through
the outbox), and the free slots of a day."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Query
from pydantic import BaseModel, Field, ValidationError
from sqlmodel import col

from services.core.db import UnitOfWork
from services.core.errors import Conflict, NotFound
from services.core.schema import Appointment, AppointmentStatus, RuntimeSetting

from .. import audit
from ..problems import problem_responses
from ..schemas import NO_NUL, AppointmentOut
from .deps import DatabaseDep, Id, Operator, Viewer

router = APIRouter(prefix="/appointments", tags=["appointments"])
# The runtime setting holding the business hours (UTC) free slots are cut from.
HOURS_SETTING = "booking.hours"
CANCELLABLE = (AppointmentStatus.BOOKED, AppointmentStatus.CONFIRMED)


class BusinessHours(BaseModel):
    open: time = time(9)
    close: time = time(18)
    slot_minutes: int = Field(60, ge=5, le=24 * 60)


class Slot(BaseModel):
    starts_at: datetime
    ends_at: datetime


async def _appointment(uow: UnitOfWork, appointment_id: int) -> Appointment:
    appointment = await uow.session.get(Appointment, appointment_id, with_for_update=True)
    if appointment is None:
        raise NotFound("appointment", appointment_id)
    return appointment


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
    query = sa.select(Appointment)
    if starts_from is not None:
        query = query.where(col(Appointment.starts_at) >= starts_from)
    if starts_to is not None:
        query = query.where(col(Appointment.starts_at) < starts_to)
    if status is not None:
        query = query.where(col(Appointment.status) == status)
    query = query.order_by(col(Appointment.starts_at), col(Appointment.id)).limit(limit)
    async with database.unit_of_work() as uow:
        return list((await uow.session.execute(query)).scalars())


async def _hours(uow: UnitOfWork) -> BusinessHours:
    setting = await uow.session.get(RuntimeSetting, HOURS_SETTING)
    if setting is None:
        return BusinessHours()
    try:
        return BusinessHours.model_validate(setting.value)
    except ValidationError as error:  # the staff's setting is wrong, not the request: 409
        message = error.errors()[0]["msg"]
        raise Conflict(f"runtime setting {HOURS_SETTING} is invalid: {message}") from error


@router.get("/free-slots", response_model=list[Slot], responses=problem_responses(409, 422))
async def free_slots(
    database: DatabaseDep,
    _: Viewer,
    day: date,
    resource: Annotated[str, Query(max_length=64, pattern=NO_NUL)] = "default",
) -> list[Slot]:
    """Slots of the day (business hours from the `booking.hours` setting, UTC) that no live
    appointment overlaps."""
    async with database.unit_of_work() as uow:
        hours = await _hours(uow)
        opens = datetime.combine(day, hours.open, tzinfo=UTC)
        closes = datetime.combine(day, hours.close, tzinfo=UTC)
        taken = (
            await uow.session.execute(
                sa.select(col(Appointment.starts_at), col(Appointment.ends_at)).where(
                    col(Appointment.resource) == resource,
                    col(Appointment.status) != AppointmentStatus.CANCELLED,
                    col(Appointment.starts_at) < closes,
                    col(Appointment.ends_at) > opens,
                )
            )
        ).all()
    step = timedelta(minutes=hours.slot_minutes)
    slots = []
    start = opens
    while start + step <= closes:
        end = start + step
        if not any(busy_start < end and busy_end > start for busy_start, busy_end in taken):
            slots.append(Slot(starts_at=start, ends_at=end))
        start = end
    return slots


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
        appointment = await _appointment(uow, appointment_id)
        if appointment.status != AppointmentStatus.BOOKED:
            raise Conflict(f"appointment {appointment_id} is {appointment.status}")
        appointment.status = AppointmentStatus.CONFIRMED
        appointment.updated_at = sa.func.now()  # type: ignore[assignment]
        await uow.session.flush()
        await uow.session.refresh(appointment)
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
        appointment = await _appointment(uow, appointment_id)
        if appointment.status not in CANCELLABLE:
            raise Conflict(f"appointment {appointment_id} is {appointment.status}")
        was = appointment.status
        appointment = await uow.appointments.cancel(appointment_id)
        await uow.session.refresh(appointment)
        user = await uow.users.get(appointment.user_id)
        if user.deleted_at is None:
            when = appointment.starts_at.strftime("%Y-%m-%d %H:%M UTC")
            await uow.outbox.enqueue(
                user.telegram_id,
                f"Your appointment on {when} was cancelled.",
                user_id=user.id,
                dedup_key=f"appointment-cancelled:{appointment_id}",
            )
        audit.record(
            uow, who, "appointment.cancel", "appointment", appointment_id, _status(was, "cancelled")
        )
    return appointment
