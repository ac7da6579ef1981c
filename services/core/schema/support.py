"""Support tickets, their messages, and each user's forum topic in the staff group."""

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from .base import (
    MESSAGE_TEXT_MAX,
    enum_field,
    fk_field,
    id_field,
    now_field,
    optional_time_field,
    telegram_id_field,
    updated_field,
)


class TicketStatus(StrEnum):
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"
    CLOSED = "closed"


class Ticket(SQLModel, table=True):
    __tablename__ = "tickets"
    __table_args__ = (
        sa.Index("ix_tickets_status_assignee", "status", "assigned_staff_id"),
        sa.Index("ix_tickets_user_status", "user_id", "status"),
    )

    id: int | None = id_field()
    user_id: int = fk_field("users.id", "CASCADE")
    # A staff member who leaves does not take the ticket history with them.
    assigned_staff_id: int | None = fk_field("staff.id", "SET NULL", nullable=True)
    status: TicketStatus = enum_field(TicketStatus, TicketStatus.OPEN, "ticket_status")
    subject: str = Field(default="", max_length=256)
    solution: str | None = Field(default=None, max_length=MESSAGE_TEXT_MAX)
    created_at: datetime | None = now_field()
    updated_at: datetime | None = updated_field()
    first_response_at: datetime | None = optional_time_field()
    resolved_at: datetime | None = optional_time_field()
    closed_at: datetime | None = optional_time_field()


class TicketAuthor(StrEnum):
    USER = "user"
    STAFF = "staff"


class TicketMessage(SQLModel, table=True):
    __tablename__ = "ticket_messages"
    __table_args__ = (sa.Index("ix_ticket_messages_ticket_created", "ticket_id", "created_at"),)

    id: int | None = id_field()
    ticket_id: int = fk_field("tickets.id", "CASCADE")
    author: TicketAuthor = enum_field(TicketAuthor, TicketAuthor.USER, "ticket_author")
    staff_id: int | None = fk_field("staff.id", "SET NULL", nullable=True)
    text: str = Field(max_length=MESSAGE_TEXT_MAX)
    telegram_message_id: int | None = telegram_id_field(nullable=True, default=None)
    created_at: datetime | None = now_field()


class ForumTopic(SQLModel, table=True):
    """The one forum topic per user in the staff group where their tickets are discussed."""

    __tablename__ = "forum_topics"
    __table_args__ = (sa.UniqueConstraint("chat_id", "message_thread_id"),)

    user_id: int = Field(
        primary_key=True, sa_type=sa.BigInteger, foreign_key="users.id", ondelete="CASCADE"
    )
    chat_id: int = telegram_id_field()
    message_thread_id: int = telegram_id_field()
    created_at: datetime | None = now_field()
