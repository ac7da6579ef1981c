"""GDPR: export everything held about one user; erase a user. Erasing keeps the user's row
(anonymised, soft-deleted) and their payments, so the books still add up."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter
from pydantic import BaseModel
from sqlmodel import col

from services.core.db import UnitOfWork
from services.core.repositories.booking import UPCOMING
from services.core.schema import (
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

from .. import audit
from ..problems import problem_responses
from ..schemas import (
    AppointmentOut,
    AuditOut,
    ConversationMessageOut,
    CreditChangeOut,
    OutboxOut,
    PaymentOut,
    TicketDetail,
    TicketMessageOut,
    TicketOut,
    UserOut,
)
from .deps import Admin, DatabaseDep, Id

router = APIRouter(prefix="/users", tags=["GDPR"])
# What a ticket message or subject reads once erased.
ERASED = "[erased]"


class UserExport(BaseModel):
    user: UserOut
    conversation_messages: list[ConversationMessageOut]
    tickets: list[TicketDetail]
    appointments: list[AppointmentOut]
    payments: list[PaymentOut]
    credit_changes: list[CreditChangeOut]
    outbox: list[OutboxOut]
    audit_log: list[AuditOut]


async def _all(uow: UnitOfWork, query: sa.Select[Any]) -> list[Any]:
    return list((await uow.session.execute(query)).scalars())


async def _owned(uow: UnitOfWork, model: Any, user_id: int) -> list[Any]:
    """The user's rows of a table with a user_id column, oldest first."""
    query = sa.select(model).where(col(model.user_id) == user_id).order_by(col(model.id))
    return await _all(uow, query)


@router.get("/{user_id}/export", response_model=UserExport, responses=problem_responses(404))
async def export_user(database: DatabaseDep, who: Admin, user_id: Id) -> UserExport:
    """Everything held about the user, as one JSON document; the export is audited."""
    async with database.unit_of_work() as uow:
        user = await uow.users.get(user_id)
        tickets = await _owned(uow, Ticket, user_id)
        ticket_ids = [ticket.id for ticket in tickets]
        messages = await _all(
            uow,
            sa.select(TicketMessage)
            .where(col(TicketMessage.ticket_id).in_(ticket_ids))
            .order_by(col(TicketMessage.id)),
        )
        export = UserExport(
            user=UserOut.model_validate(user),
            conversation_messages=await _owned(uow, ConversationMessage, user_id),
            tickets=[
                TicketDetail(
                    **TicketOut.model_validate(ticket).model_dump(),
                    messages=[
                        TicketMessageOut.model_validate(message)
                        for message in messages
                        if message.ticket_id == ticket.id
                    ],
                )
                for ticket in tickets
            ],
            appointments=await _owned(uow, Appointment, user_id),
            payments=await _owned(uow, Payment, user_id),
            credit_changes=await _owned(uow, CreditChange, user_id),
            outbox=await _owned(uow, OutboxMessage, user_id),
            audit_log=await _all(
                uow,
                sa.select(AuditEntry)
                .where(col(AuditEntry.entity) == "user", col(AuditEntry.entity_id) == str(user_id))
                .order_by(col(AuditEntry.id)),
            ),
        )
        audit.record(uow, who, "user.export", "user", user_id, {})
    return export


class Erasure(BaseModel):
    user: UserOut
    conversation_messages: int
    ticket_messages: int
    outbox_messages: int
    appointments_cancelled: int


@router.post("/{user_id}/erase", response_model=Erasure, responses=problem_responses(404))
async def erase_user(database: DatabaseDep, who: Admin, user_id: Id) -> Erasure:
    """Anonymises the user (names, username, language, Telegram id), removes the text of their
    conversations, tickets and queued messages, cancels their upcoming appointments (freeing
    the slots; their reminders go with the queued messages), and marks them deleted. Payments
    and credit changes stay, so revenue figures do not change. Erasing twice is harmless."""
    async with database.unit_of_work() as uow:
        telegram_id = (await uow.users.get(user_id)).telegram_id
        session = uow.session
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
                updated_at=sa.func.now(),
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
        topic = await uow.tickets.user_topic(user_id)
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
            .values(status=AppointmentStatus.CANCELLED, updated_at=sa.func.now())
        )
        await session.execute(sa.delete(ForumTopic).where(col(ForumTopic.user_id) == user_id))
        counts = {
            "conversation_messages": conversation.rowcount,  # type: ignore[attr-defined]
            "ticket_messages": ticket_messages.rowcount,  # type: ignore[attr-defined]
            "outbox_messages": outbox.rowcount,  # type: ignore[attr-defined]
            "appointments_cancelled": cancelled.rowcount,  # type: ignore[attr-defined]
        }
        user = await uow.users.get(user_id)
        await session.refresh(user)
        audit.record(uow, who, "user.erase", "user", user_id, counts)
    return Erasure(user=UserOut.model_validate(user), **counts)
