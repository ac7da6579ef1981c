"""GDPR: export everything held about one user; erase a user. Erasing keeps the user's row
(anonymised, soft-deleted) and their payments, so the books still add up."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

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


class UserExport(BaseModel):
    user: UserOut
    conversation_messages: list[ConversationMessageOut]
    tickets: list[TicketDetail]
    appointments: list[AppointmentOut]
    payments: list[PaymentOut]
    credit_changes: list[CreditChangeOut]
    outbox: list[OutboxOut]
    audit_log: list[AuditOut]


@router.get("/{user_id}/export", response_model=UserExport, responses=problem_responses(404))
async def export_user(database: DatabaseDep, who: Admin, user_id: Id) -> UserExport:
    """Everything held about the user, as one JSON document; the export is audited."""
    async with database.unit_of_work() as uow:
        held = await uow.privacy.export(await uow.users.get(user_id))
        audit.record(uow, who, "user.export", "user", user_id, {})
    return UserExport(
        user=UserOut.model_validate(held.user),
        conversation_messages=[
            ConversationMessageOut.model_validate(row) for row in held.conversation_messages
        ],
        tickets=[
            TicketDetail(
                **TicketOut.model_validate(ticket).model_dump(),
                messages=[
                    TicketMessageOut.model_validate(message)
                    for message in held.ticket_messages
                    if message.ticket_id == ticket.id
                ],
            )
            for ticket in held.tickets
        ],
        appointments=[AppointmentOut.model_validate(row) for row in held.appointments],
        payments=[PaymentOut.model_validate(row) for row in held.payments],
        credit_changes=[CreditChangeOut.model_validate(row) for row in held.credit_changes],
        outbox=[OutboxOut.model_validate(row) for row in held.outbox],
        audit_log=[AuditOut.model_validate(row) for row in held.audit_log],
    )


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
        erased = await uow.privacy.erase(await uow.users.get(user_id))
        audit.record(uow, who, "user.erase", "user", user_id, erased.counts())
    return Erasure(user=UserOut.model_validate(erased.user), **erased.counts())
