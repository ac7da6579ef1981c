"""Support tickets: list, detail with messages, assign, reply (through the outbox), close."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from services.core.db import UnitOfWork
from services.core.notices import Notice
from services.core.schema import Ticket, TicketStatus

from .. import audit
from ..pagination import CURSOR_PATTERN, after, to_page
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


async def _in_topic(
    uow: UnitOfWork, ticket: Ticket, notice: Notice, values: dict[str, object]
) -> None:
    """Staff working in Telegram see in the user's support topic what was done here."""
    topic = await uow.tickets.user_topic(ticket.user_id)
    if topic is not None:
        await uow.outbox.post(topic, notice, values)


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
    start = after(cursor)
    async with database.unit_of_work() as uow:
        found = await uow.tickets.search(
            status=status, assignee=assignee, unassigned=unassigned, after=start, limit=limit
        )
    return to_page(found, TicketOut)


@router.get("/{ticket_id}", response_model=TicketDetail, responses=problem_responses(404))
async def get_ticket(database: DatabaseDep, _: Viewer, ticket_id: Id) -> TicketDetail:
    async with database.unit_of_work() as uow:
        ticket = await uow.tickets.get(ticket_id)
        messages = await uow.tickets.messages(ticket_id)
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
        ticket = await uow.tickets.get(ticket_id, lock=True)
        previous = ticket.assigned_staff_id
        if previous == assignment.staff_id and ticket.status == TicketStatus.IN_PROGRESS:
            return ticket  # already theirs: no second notice to the user, no audit entry
        staff = await uow.tickets.assign(ticket, assignment.staff_id)
        taken = {"ticket": ticket_id, "staff": staff.name}
        await uow.outbox.tell(await uow.users.get(ticket.user_id), Notice.TICKET_IN_PROGRESS, taken)
        await _in_topic(uow, ticket, Notice.STAFF_ASSIGNED, taken)
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
    """Adds a staff message and queues it for the user in the outbox (the bot delivers it,
    framed in the user's language)."""
    async with database.unit_of_work() as uow:
        ticket = await uow.tickets.get(ticket_id, lock=True)
        sent = await uow.tickets.reply(ticket, who.staff_id, reply.text)
        values = {"ticket": ticket_id, "text": reply.text}
        outbox_id = await uow.outbox.tell(sent.user, Notice.TICKET_REPLY, values, sent.dedup_key)
        assert outbox_id is not None  # the dedup key is new: the message id is
        await _in_topic(uow, ticket, Notice.STAFF_API_REPLY, values | {"staff": who.name})
        audit.record(
            uow,
            who,
            "ticket.reply",
            "ticket",
            ticket_id,
            {"ticket_message_id": sent.message.id, "outbox_id": outbox_id},
        )
    return ReplyOut(message=TicketMessageOut.model_validate(sent.message), outbox_id=outbox_id)


@router.post(
    "/{ticket_id}/close", response_model=TicketOut, responses=problem_responses(404, 409, 422)
)
async def close_ticket(
    database: DatabaseDep, who: Operator, ticket_id: Id, closing: Closing
) -> Ticket:
    """Closes the ticket with its solution; the user is told."""
    async with database.unit_of_work() as uow:
        ticket = await uow.tickets.get(ticket_id, lock=True)
        previous = ticket.status
        await uow.tickets.close(ticket, closing.solution)
        closed = {"ticket": ticket_id, "solution": closing.solution}
        await uow.outbox.tell(await uow.users.get(ticket.user_id), Notice.TICKET_CLOSED, closed)
        status = {"ticket": ticket_id, "status": TicketStatus.CLOSED.value}
        await _in_topic(uow, ticket, Notice.STAFF_STATUS, status)
        audit.record(
            uow, who, "ticket.close", "ticket", ticket_id, {"status": [previous, "closed"]}
        )
    return ticket
