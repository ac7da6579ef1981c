"""Telegram users, the updates already processed, and the conversation log."""

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from .base import (
    BIGINT_MAX,
    MESSAGE_TEXT_MAX,
    enum_field,
    fk_field,
    id_field,
    json_field,
    now_field,
    optional_time_field,
    telegram_id_field,
    updated_field,
)

# search_text() below as PostgreSQL prints it back (implicit casts written out), so that
# Alembic's comparison of the index with the database finds no difference.
SEARCH_TEXT_SQL = (
    "((((COALESCE(username, ''::character varying))::text || ' '::text) || (first_name)::text)"
    " || ' '::text) || (COALESCE(last_name, ''::character varying))::text"
)


class User(SQLModel, table=True):
    """A Telegram user of the bot.

    is_active is false once the user has blocked the bot (Telegram answers 403); is_blocked is
    set by staff to stop serving the user. deleted_at marks a soft delete (GDPR erase keeps the
    row, anonymised, so payment totals stay in the books).
    """

    __tablename__ = "users"
    __table_args__ = (
        sa.CheckConstraint("credits >= 0", name="credits_nonnegative"),
        # Username search (ILIKE '%x%' and equality) in the admin API.
        sa.Index(
            "ix_users_username_trgm",
            "username",
            postgresql_using="gin",
            postgresql_ops={"username": "gin_trgm_ops"},
        ),
        # The admin API's search: username, first and last name as one string, ILIKE '%q%'.
        sa.Index(
            "ix_users_search_trgm",
            sa.text(f"({SEARCH_TEXT_SQL}) gin_trgm_ops"),
            postgresql_using="gin",
        ),
        # Listing live users newest first with (created_at, id) cursor pagination.
        sa.Index(
            "ix_users_live_created",
            "created_at",
            "id",
            postgresql_where=sa.text("deleted_at IS NULL"),
        ),
    )

    id: int | None = id_field()
    telegram_id: int = telegram_id_field(unique=True, ge=1)
    username: str | None = Field(default=None, max_length=32)
    first_name: str = Field(default="", max_length=64)
    last_name: str | None = Field(default=None, max_length=64)
    language_code: str | None = Field(default=None, max_length=16)
    is_active: bool = Field(default=True, sa_column_kwargs={"server_default": sa.true()})
    is_blocked: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    credits: int = Field(default=0, ge=0, sa_column_kwargs={"server_default": "0"})
    created_at: datetime | None = now_field()
    updated_at: datetime | None = updated_field()
    deleted_at: datetime | None = optional_time_field()


class ProcessedUpdate(SQLModel, table=True):
    """An update id already applied: written in the same transaction as the update's effects,
    so a redelivered update finds it and does nothing."""

    __tablename__ = "processed_updates"

    update_id: int = Field(
        primary_key=True,
        sa_type=sa.BigInteger,
        sa_column_kwargs={"autoincrement": False},
        ge=0,
        le=BIGINT_MAX,
    )
    processed_at: datetime | None = now_field()


class Direction(StrEnum):
    IN = "in"
    OUT = "out"


class ConversationMessage(SQLModel, table=True):
    """Every message to and from a user, with the handler's context."""

    __tablename__ = "conversation_messages"
    __table_args__ = (sa.Index("ix_conversation_messages_user_created", "user_id", "created_at"),)

    id: int | None = id_field()
    user_id: int = fk_field("users.id", "CASCADE")
    direction: Direction = enum_field(Direction, Direction.IN, "direction")
    text: str | None = Field(default=None, max_length=MESSAGE_TEXT_MAX)
    telegram_message_id: int | None = telegram_id_field(nullable=True, default=None)
    context: dict[str, Any] = json_field()
    created_at: datetime | None = now_field()


def search_text(columns: Any) -> sa.ColumnElement[str]:
    """Username, first and last name as one string: what the admin API's search matches with
    ILIKE '%q%' through ix_users_search_trgm, whose SEARCH_TEXT_SQL is this expression."""
    text: sa.ColumnElement[str] = (
        sa.func.coalesce(columns.username, "")
        + " "
        + columns.first_name
        + " "
        + sa.func.coalesce(columns.last_name, "")
    )
    return text
