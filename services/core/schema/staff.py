"""Staff accounts, their API keys (stored only as hashes) and the audit log."""

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from .base import (
    enum_field,
    fk_field,
    id_field,
    json_field,
    now_field,
    optional_time_field,
    telegram_id_field,
)


class Role(StrEnum):
    """Ordered: each role can do everything the ones before it can."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"


class Staff(SQLModel, table=True):
    __tablename__ = "staff"

    id: int | None = id_field()
    name: str = Field(min_length=1, max_length=64, unique=True)
    role: Role = enum_field(Role, Role.VIEWER, "staff_role")
    # Set for staff who answer tickets from the Telegram staff group.
    telegram_id: int | None = telegram_id_field(unique=True, nullable=True, default=None)
    is_active: bool = Field(default=True, sa_column_kwargs={"server_default": sa.true()})
    created_at: datetime | None = now_field()


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_keys"

    id: int | None = id_field()
    staff_id: int = fk_field("staff.id", "CASCADE", index=True)
    name: str = Field(max_length=64)
    # SHA-256 of the key, hex: the keys are long random strings, so a fast hash is enough
    # and lookups by hash stay one index probe.
    key_hash: str = Field(min_length=64, max_length=64, unique=True)
    # The first characters of the key, shown in listings so a key can be recognised.
    key_prefix: str = Field(max_length=16)
    created_at: datetime | None = now_field()
    last_used_at: datetime | None = optional_time_field()
    revoked_at: datetime | None = optional_time_field()


class AuditEntry(SQLModel, table=True):
    """Who changed what, written in the same transaction as the change."""

    __tablename__ = "audit_log"
    __table_args__ = (
        sa.Index("ix_audit_log_created_at", "created_at"),
        sa.Index("ix_audit_log_entity", "entity", "entity_id"),
        sa.Index("ix_audit_log_staff_created", "staff_id", "created_at"),
    )

    id: int | None = id_field()
    staff_id: int | None = fk_field("staff.id", "SET NULL", nullable=True)
    # The actor's name at the time, kept if the staff account is deleted later.
    actor: str = Field(max_length=64)
    action: str = Field(max_length=64)
    entity: str = Field(max_length=64)
    entity_id: str | None = Field(default=None, max_length=64)
    summary: dict[str, Any] = json_field()
    created_at: datetime | None = now_field()
