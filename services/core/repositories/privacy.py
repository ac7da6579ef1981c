"""GDPR: everything held about one user, and erasing a user. Erasing keeps the user's row
(anonymised, soft-deleted) and their payments, so the books still add up."""

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlmodel import col

from ..schema import (
    Appointment,
    AppointmentStatus,
    AuditEntry,
    ConversationMessage,
    CreditChange,
    ForumTopic,
    OutboxMessage,
    Payment,
    Ticket,
    TicketMessage,
    User,
)
from .base import Repository
from .booking import UPCOMING
from .tickets import TicketRepository

# What a ticket message or subject reads once erased.
ERASED = "[erased]"


@dataclass(frozen=True)
class UserData:
    """Every row held about one user, each kind oldest first."""

    user: User
    conversation_messages: list[ConversationMessage]
    tickets: list[Ticket]
    ticket_messages: list[TicketMessage]
    appointments: list[Appointment]
    payments: list[Payment]
    credit_changes: list[CreditChange]
    outbox: list[OutboxMessage]
    audit_log: list[AuditEntry]


@dataclass(frozen=True)
class Erasure:
    user: User
    conversation_messages: int
    ticket_messages: int
    outbox_messages: int
    appointments_cancelled: int

    def counts(self) -> dict[str, int]:
        return {
            "conversation_messages": self.conversation_messages,
            "ticket_messages": self.ticket_messages,
            "outbox_messages": self.outbox_messages,
            "appointments_cancelled": self.appointments_cancelled,
        }


class PrivacyRepository(Repository):
    async def _all(self, query: sa.Select[Any]) -> list[Any]:
        return list((await self.session.execute(query)).scalars())

    async def _owned(self, model: Any, user_id: int) -> list[Any]:
        """The user's rows of a table with a user_id column, oldest first."""
        query = sa.select(model).where(col(model.user_id) == user_id).order_by(col(model.id))
        return await self._all(query)

    async def export(self, user: User) -> UserData:
        """Every row held about the user."""
        user_id = user.id
        assert user_id is not None  # a stored row
        tickets = await self._owned(Ticket, user_id)
        return UserData(
            user=user,
            conversation_messages=await self._owned(ConversationMessage, user_id),
            tickets=tickets,
            ticket_messages=await self._all(
                sa.select(TicketMessage)
                .where(col(TicketMessage.ticket_id).in_([ticket.id for ticket in tickets]))
                .order_by(col(TicketMessage.id))
            ),
            appointments=await self._owned(Appointment, user_id),
            payments=await self._owned(Payment, user_id),
            credit_changes=await self._owned(CreditChange, user_id),
            outbox=await self._owned(OutboxMessage, user_id),
            audit_log=await self._all(
                sa.select(AuditEntry)
                .where(col(AuditEntry.entity) == "user", col(AuditEntry.entity_id) == str(user_id))
                .order_by(col(AuditEntry.id))
            ),
        )

    async def erase(self, user: User) -> Erasure:
        """Anonymises the user (names, username, language, Telegram id), removes the text of
        their conversations, tickets and queued messages, cancels their upcoming appointments
        (freeing the slots; their reminders go with the queued messages), and marks them
        deleted. Payments and credit changes stay. Erasing twice is harmless."""
        user_id, telegram_id = user.id, user.telegram_id
        assert user_id is not None  # a stored row
        session = self.session
        # A negative Telegram id: never a real one (those are positive), unique per user, and
        # a returning user gets a fresh row instead of the erased one.
        await session.execute(
            sa.update(User)
            .where(col(User.id) == user_id)
            .values(
                telegram_id=-user_id,
                username=None,
                first_name="",
                last_name=None,
                language_code=None,
                is_active=False,
                deleted_at=sa.func.coalesce(col(User.deleted_at), sa.func.now()),
            )
        )
        conversation = await session.execute(
            sa.update(ConversationMessage)
            .where(col(ConversationMessage.user_id) == user_id)
            .values(text=None, context={})
        )
        tickets = sa.select(col(Ticket.id)).where(col(Ticket.user_id) == user_id)
        ticket_messages = await session.execute(
            sa.update(TicketMessage)
            .where(col(TicketMessage.ticket_id).in_(tickets))
            .values(text=ERASED)
        )
        await session.execute(
            sa.update(Ticket)
            .where(col(Ticket.user_id) == user_id)
            .values(subject=ERASED, solution=None)
        )
        theirs = [col(OutboxMessage.user_id) == user_id, col(OutboxMessage.chat_id) == telegram_id]
        topic = await TicketRepository(self._transaction).user_topic(user_id)
        if topic is not None:  # what is on its way to their support topic is about them too
            theirs.append(
                sa.and_(
                    col(OutboxMessage.chat_id) == topic.chat_id,
                    col(OutboxMessage.payload)["message_thread_id"].as_integer()
                    == topic.message_thread_id,
                )
            )
        outbox = await session.execute(sa.delete(OutboxMessage).where(sa.or_(*theirs)))
        cancelled = await session.execute(
            sa.update(Appointment)
            .where(
                col(Appointment.user_id) == user_id,
                col(Appointment.status).in_(UPCOMING),
                col(Appointment.starts_at) > sa.func.now(),
            )
            .values(status=AppointmentStatus.CANCELLED)
        )
        await session.execute(sa.delete(ForumTopic).where(col(ForumTopic.user_id) == user_id))
        await session.refresh(user)
        return Erasure(
            user=user,
            conversation_messages=conversation.rowcount,  # type: ignore[attr-defined]
            ticket_messages=ticket_messages.rowcount,  # type: ignore[attr-defined]
            outbox_messages=outbox.rowcount,  # type: ignore[attr-defined]
            appointments_cancelled=cancelled.rowcount,  # type: ignore[attr-defined]
        )
