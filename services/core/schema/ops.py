"""Operational tables: feature flags, runtime settings, the outbox and backup runs."""

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from .base import (
    enum_field,
    fk_field,
    id_field,
    json_field,
    now_field,
    optional_time_field,
    telegram_id_field,
    updated_field,
)


class FeatureFlag(SQLModel, table=True):
    __tablename__ = "feature_flags"

    key: str = Field(primary_key=True, max_length=64)
    enabled: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    description: str = Field(default="", max_length=256)
    updated_at: datetime | None = updated_field()


class RuntimeSetting(SQLModel, table=True):
    __tablename__ = "runtime_settings"

    key: str = Field(primary_key=True, max_length=64)
    value: Any = Field(sa_type=JSONB)
    description: str = Field(default="", max_length=256)
    updated_at: datetime | None = updated_field()


class OutboxStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    # Taken back before it was sent (the reminder of a cancelled booking).
    WITHDRAWN = "withdrawn"


class OutboxMessage(SQLModel, table=True):
    """A Bot API call another service wants made, written in the same transaction as the
    change that caused it and delivered by the bot."""

    __tablename__ = "outbox"
    __table_args__ = (
        sa.CheckConstraint("attempts >= 0", name="attempts_nonnegative"),
        # The bot's delivery loop: the oldest due pending messages.
        sa.Index(
            "ix_outbox_pending_due",
            "available_at",
            "id",
            postgresql_where=sa.text("status = 'pending'"),
        ),
    )

    id: int | None = id_field()
    chat_id: int = telegram_id_field()
    user_id: int | None = fk_field("users.id", "SET NULL", nullable=True)
    method: str = Field(default="sendMessage", max_length=64)
    payload: dict[str, Any] = json_field()
    status: OutboxStatus = enum_field(OutboxStatus, OutboxStatus.PENDING, "outbox_status")
    # Makes an enqueue idempotent (e.g. one reminder per appointment).
    dedup_key: str | None = Field(default=None, max_length=128, unique=True)
    attempts: int = Field(default=0, ge=0, sa_column_kwargs={"server_default": "0"})
    available_at: datetime | None = now_field()
    created_at: datetime | None = now_field()
    sent_at: datetime | None = optional_time_field()
    last_error: str | None = Field(default=None, max_length=1024)


class BackupKind(StrEnum):
    BASE = "base"
    DRILL = "drill"
    DUMP = "dump"
    RESTORE = "restore"
    # A backup into the offsite repository (pgBackRest, verified) and a disaster drill
    # (restore from the offsite repository alone); names fit the column's VARCHAR(7).
    OFFSITE = "offsite"
    DISASTER_DRILL = "dr"


class BackupStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class BackupRun(SQLModel, table=True):
    __tablename__ = "backup_runs"
    __table_args__ = (sa.Index("ix_backup_runs_kind_started", "kind", "started_at"),)

    id: int | None = id_field()
    kind: BackupKind = enum_field(BackupKind, BackupKind.BASE, "backup_kind")
    status: BackupStatus = enum_field(BackupStatus, BackupStatus.RUNNING, "backup_status")
    label: str = Field(default="", max_length=128)
    started_at: datetime | None = now_field()
    finished_at: datetime | None = optional_time_field()
    size_bytes: int | None = Field(default=None, sa_type=sa.BigInteger, ge=0)
    details: dict[str, Any] = json_field()
    error: str | None = Field(default=None, max_length=2048)
