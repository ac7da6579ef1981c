"""Support tickets: list, detail with messages, assign, reply (through the outbox), close."""

from __future__ import annotations

from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Query
from sqlmodel import col

from services.core.db import UnitOfWork
from services.core.errors import Conflict, NotFound
from services.core.schema import Staff, Ticket, TicketAuthor, TicketMessage, TicketStatus

from .. import audit
from ..pagination import CURSOR_PATTERN, newest_first, page_of
from ..problems import problem_responses
from ..schemas import (
    Assignment,
    Closing,
    Page,
    Reply,
    ReplyOut,
    TicketDetail,
    TicketMessageOut,
    TicketOut,
)
from .deps import DatabaseDep, Id, IdFilter, Limit, Operator, Viewer

router = APIRouter(prefix="/tickets", tags=["tickets"])
FINISHED = (TicketStatus.RESOLVED, TicketStatus.CLOSED)


async def _ticket(uow: UnitOfWork, ticket_id: int, *, for_update: bool = False) -> Ticket:
    query = sa.select(Ticket).where(col(Ticket.id) == ticket_id)
    if for_update:  # two staff acting on one ticket at once: the second sees the first's change
        query = query.with_for_update()
    ticket = (await uow.session.execute(query)).scalar_one_or_none()
    if ticket is None:
        raise NotFound("ticket", ticket_id)
    return ticket


async def _open_ticket(uow: UnitOfWork, ticket_id: int) -> Ticket:
    ticket = await _ticket(uow, ticket_id, for_update=True)
    if ticket.status in FINISHED:
        raise Conflict(f"ticket {ticket_id} is {ticket.status}")
    return ticket


@router.get("", response_model=Page[TicketOut], responses=problem_responses(422))
async def list_tickets(
    database: DatabaseDep,
    _: Viewer,
    limit: Limit,
    status: TicketStatus | None = None,
    assignee: IdFilter = None,
    unassigned: Annotated[bool, Query(description="Only tickets nobody is assigned")] = False,
    cursor: Annotated[
        str | None, Query(min_length=1, max_length=200, pattern=CURSOR_PATTERN)
    ] = None,
) -> Page[TicketOut]:
    """Tickets newest first."""
    query = sa.select(Ticket)
    if status is not None:
        query = query.where(col(Ticket.status) == status)
    if assignee is not None:
        query = query.where(col(Ticket.assigned_staff_id) == assignee)
    if unassigned:
        query = query.where(col(Ticket.assigned_staff_id).is_(None))
    query = newest_first(query, Ticket, cursor, limit)
    async with database.unit_of_work() as uow:
        rows = list((await uow.session.execute(query)).scalars())
    items, next_cursor = page_of(rows, limit)
    return Page[TicketOut](
        items=[TicketOut.model_validate(row) for row in items], next_cursor=next_cursor
    )


@router.get("/{ticket_id}", response_model=TicketDetail, responses=problem_responses(404))
async def get_ticket(database: DatabaseDep, _: Viewer, ticket_id: Id) -> TicketDetail:
    async with database.unit_of_work() as uow:
        ticket = await _ticket(uow, ticket_id)
        messages = (
            await uow.session.execute(
                sa.select(TicketMessage)
                .where(col(TicketMessage.ticket_id) == ticket_id)
                .order_by(col(TicketMessage.created_at), col(TicketMessage.id))
            )
        ).scalars()
        return TicketDetail(
            **TicketOut.model_validate(ticket).model_dump(),
            messages=[TicketMessageOut.model_validate(message) for message in messages],
        )


@router.post("/{ticket_id}/assign", response_model=TicketOut, responses=problem_responses(404, 409))
async def assign_ticket(
    database: DatabaseDep, who: Operator, ticket_id: Id, assignment: Assignment
) -> Ticket:
    """Assigns the ticket to a staff member; an open ticket becomes in progress."""
    async with database.unit_of_work() as uow:
        ticket = await _open_ticket(uow, ticket_id)
        staff = await uow.session.get(Staff, assignment.staff_id)
        if staff is None or not staff.is_active:
            raise NotFound("staff", assignment.staff_id)
        previous = ticket.assigned_staff_id
        ticket.assigned_staff_id = staff.id
        if ticket.status == TicketStatus.OPEN:
            ticket.status = TicketStatus.IN_PROGRESS
        ticket.updated_at = sa.func.now()  # type: ignore[assignment]
        await uow.session.flush()
        await uow.session.refresh(ticket)
        audit.record(
            uow,
            who,
            "ticket.assign",
            "ticket",
            ticket_id,
            {"assigned_staff_id": [previous, staff.id]},
        )
    return ticket


@router.post(
    "/{ticket_id}/reply",
    response_model=ReplyOut,
    status_code=201,
    responses=problem_responses(404, 409, 422),
)
async def reply_to_ticket(
    database: DatabaseDep, who: Operator, ticket_id: Id, reply: Reply
) -> ReplyOut:
    """Adds a staff message and queues it for the user in the outbox (the bot delivers it)."""
    async with database.unit_of_work() as uow:
        ticket = await _open_ticket(uow, ticket_id)
        user = await uow.users.get(ticket.user_id)
        if user.deleted_at is not None:
            raise Conflict(f"user {user.id} was erased")
        message = TicketMessage(
            ticket_id=ticket_id, author=TicketAuthor.STAFF, staff_id=who.staff_id, text=reply.text
        )
        uow.session.add(message)
        if ticket.first_response_at is None:
            ticket.first_response_at = sa.func.now()  # type: ignore[assignment]
        if ticket.status == TicketStatus.OPEN:
            ticket.status = TicketStatus.IN_PROGRESS
        ticket.updated_at = sa.func.now()  # type: ignore[assignment]
        await uow.session.flush()
        await uow.session.refresh(message)
        outbox_id = await uow.outbox.enqueue(
            user.telegram_id,
            reply.text,
            user_id=user.id,
            dedup_key=f"ticket-reply:{message.id}",
        )
        assert outbox_id is not None  # the dedup key is new: the message id is
        audit.record(
            uow,
            who,
            "ticket.reply",
            "ticket",
            ticket_id,
            {"ticket_message_id": message.id, "outbox_id": outbox_id},
        )
    return ReplyOut(message=TicketMessageOut.model_validate(message), outbox_id=outbox_id)


@router.post(
    "/{ticket_id}/close", response_model=TicketOut, responses=problem_responses(404, 409, 422)
)
async def close_ticket(
    database: DatabaseDep, who: Operator, ticket_id: Id, closing: Closing
) -> Ticket:
    """Closes the ticket with its solution."""
    async with database.unit_of_work() as uow:
        ticket = await _ticket(uow, ticket_id, for_update=True)
        if ticket.status == TicketStatus.CLOSED:
            raise Conflict(f"ticket {ticket_id} is already closed")
        previous = ticket.status
        ticket.status = TicketStatus.CLOSED
        ticket.solution = closing.solution
        if ticket.resolved_at is None:
            ticket.resolved_at = sa.func.now()  # type: ignore[assignment]
        ticket.closed_at = sa.func.now()  # type: ignore[assignment]
        ticket.updated_at = sa.func.now()  # type: ignore[assignment]
        await uow.session.flush()
        await uow.session.refresh(ticket)
        audit.record(
            uow, who, "ticket.close", "ticket", ticket_id, {"status": [previous, "closed"]}
        )
    return ticket
