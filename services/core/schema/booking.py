"""Appointments. Free slots are computed from business hours in settings; the exclusion
constraint makes two live appointments on one resource overlapping in time impossible."""

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ExcludeConstraint
from sqlmodel import Field, SQLModel

from .base import enum_field, fk_field, id_field, now_field, optional_time_field, updated_field


class AppointmentStatus(StrEnum):
    BOOKED = "booked"
    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"
    COMPLETED = "completed"


# Appointments that hold their time slot; a cancelled one frees it.
LIVE_APPOINTMENT = "status IN ('booked', 'confirmed', 'completed')"


class Appointment(SQLModel, table=True):
    __tablename__ = "appointments"
    __table_args__ = (
        sa.CheckConstraint("ends_at > starts_at", name="ends_after_start"),
        ExcludeConstraint(
            (sa.column("resource"), "="),
            (sa.func.tstzrange(sa.column("starts_at"), sa.column("ends_at")), "&&"),
            name="ex_appointments_no_overlap",
            using="gist",
            where=sa.text(LIVE_APPOINTMENT),
        ),
        sa.Index("ix_appointments_starts_at", "starts_at"),
        sa.Index("ix_appointments_user_starts", "user_id", "starts_at"),
    )

    id: int | None = id_field()
    user_id: int = fk_field("users.id", "CASCADE")
    # What is booked (a room, a specialist); one business has one resource by default.
    resource: str = Field(
        default="default", max_length=64, sa_column_kwargs={"server_default": "default"}
    )
    starts_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    ends_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    status: AppointmentStatus = enum_field(
        AppointmentStatus, AppointmentStatus.BOOKED, "appointment_status"
    )
    reminder_sent_at: datetime | None = optional_time_field()
    created_at: datetime | None = now_field()
    updated_at: datetime | None = updated_field()
