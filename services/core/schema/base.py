"""Building blocks shared by every table: naming convention, timestamps, bounded types."""

from datetime import datetime
from enum import StrEnum
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel
from sqlmodel.main import OnDeleteType

# Deterministic constraint names: Alembic can drop what it created, and a constraint
# violation names the table and column it guards (the error mapper reads them).
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Telegram ids are 64-bit; PostgreSQL BIGINT's range.
BIGINT_MAX = 2**63 - 1
# Telegram's own limit for a message's text.
MESSAGE_TEXT_MAX = 4096


def now_field(*, nullable: bool = False) -> Any:
    """A timestamptz column filled by the database when the row is written."""
    return Field(
        default=None,
        sa_type=sa.DateTime(timezone=True),
        sa_column_kwargs={"server_default": sa.func.now()},
        nullable=nullable,
    )


def updated_field() -> Any:
    """A timestamptz column the database sets when the row is written and again whenever it
    is updated (SQLAlchemy adds `now()` to every ORM flush and Core UPDATE of the table that
    does not set it): no write path can forget it. Raw SQL and INSERT ... ON CONFLICT DO
    UPDATE are outside SQLAlchemy's reach and set it themselves."""
    return Field(
        default=None,
        sa_type=sa.DateTime(timezone=True),
        sa_column_kwargs={"server_default": sa.func.now(), "onupdate": sa.func.now()},
        nullable=False,
    )


def db_now() -> datetime:
    """The database's clock (`now()`: the transaction's start, the clock of every server
    default) as the value of a timestamp column that records an event (resolved_at,
    revoked_at). SQLAlchemy renders the expression into the UPDATE; the attribute reads the
    stored value after a refresh. Typed as what the column holds: the one cast is here."""
    return cast(datetime, sa.func.now())


def optional_time_field() -> Any:
    """A timestamptz column set by the application when something happens."""
    return Field(default=None, sa_type=sa.DateTime(timezone=True), nullable=True)


def id_field() -> Any:
    return Field(default=None, primary_key=True, sa_type=sa.BigInteger)


def telegram_id_field(
    *, unique: bool = False, nullable: bool = False, ge: int = -BIGINT_MAX, **kw: Any
) -> Any:
    """A Telegram id (user, chat, message): 64-bit, so BIGINT, validated against its range."""
    return Field(
        sa_type=sa.BigInteger, ge=ge, le=BIGINT_MAX, unique=unique, nullable=nullable, **kw
    )


def fk_field(
    target: str, ondelete: OnDeleteType, *, nullable: bool = False, index: bool = False
) -> Any:
    return Field(
        default=None,
        sa_type=sa.BigInteger,
        foreign_key=target,
        ondelete=ondelete,
        nullable=nullable,
        index=index,
    )


def enum_field(enum: type[StrEnum], default: StrEnum, name: str) -> Any:
    """A string column with a CHECK constraint (not a native PG enum: adding a value later
    is then a plain constraint change, and downgrades leave no orphaned types)."""
    return Field(
        default=default,
        sa_type=sa.Enum(
            enum,
            name=name,
            native_enum=False,
            create_constraint=True,
            length=max(len(m.value) for m in enum),
            values_callable=lambda e: [m.value for m in e],
        ),
        sa_column_kwargs={"server_default": default.value},
        nullable=False,
    )


def json_field(*, nullable: bool = False) -> Any:
    return Field(
        default_factory=dict,
        sa_type=JSONB,
        sa_column_kwargs={"server_default": sa.text("'{}'::jsonb")} if not nullable else {},
        nullable=nullable,
    )
