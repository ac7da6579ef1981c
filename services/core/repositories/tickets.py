"""Support tickets and their messages, shared by the bot (users and the staff group) and the
admin API, and each user's forum topic in the staff group.

The rules staff actions follow live here once: a reply or an assignment needs a ticket that
is open or in progress, a closed ticket cannot be closed again, the first reply marks the
ticket in progress. Callers lock the ticket first (`get(..., lock=True)` or `latest(...,
lock=True)`): two staff members acting on one ticket at once are applied one after the other.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col

from ..errors import Conflict, NotFound
from ..schema import (
    ForumTopic,
    Staff,
    Ticket,
    TicketAuthor,
    TicketMessage,
    TicketStatus,
    User,
    db_now,
)
from .base import Repository, checked
from .pages import Key, Slice, page

# Tickets staff can still answer and assign.
UNFINISHED = (TicketStatus.OPEN, TicketStatus.IN_PROGRESS)
# A user's current ticket: a resolved one reopens when they write again.
ACTIVE = (*UNFINISHED, TicketStatus.RESOLVED)
SUBJECT_MAX = 256


@dataclass(frozen=True)
class StaffReply:
    message: TicketMessage
    user: User  # whom the reply is for

    @property
    def dedup_key(self) -> str:
        """The outbox key of the reply's delivery: one message to the user per reply."""
        return f"ticket-reply:{self.message.id}"


def _subject(text: str) -> str:
    return text.strip().split("\n", 1)[0][:SUBJECT_MAX]


def _require_unfinished(ticket: Ticket) -> None:
    if ticket.status not in UNFINISHED:
        raise Conflict(f"ticket {ticket.id} is {ticket.status}")


class TicketRepository(Repository):
    async def get(self, ticket_id: int, *, lock: bool = False) -> Ticket:
        query = sa.select(Ticket).where(col(Ticket.id) == ticket_id)
        if lock:
            query = query.with_for_update()
        ticket = (await self.session.execute(query)).scalar_one_or_none()
        if ticket is None:
            raise NotFound("ticket", ticket_id)
        return ticket

    async def search(
        self,
        *,
        status: TicketStatus | None = None,
        assignee: int | None = None,
        unassigned: bool = False,
        after: Key | None,
        limit: int,
    ) -> Slice[Ticket]:
        """A page of tickets newest first; each filter given narrows it."""
        query = sa.select(Ticket)
        if status is not None:
            query = query.where(col(Ticket.status) == status)
        if assignee is not None:
            query = query.where(col(Ticket.assigned_staff_id) == assignee)
        if unassigned:
            query = query.where(col(Ticket.assigned_staff_id).is_(None))
        return await page(self.session, query, Ticket, after, limit)

    async def messages(self, ticket_id: int) -> list[TicketMessage]:
        """The ticket's messages, oldest first."""
        result = await self.session.execute(
            sa.select(TicketMessage)
            .where(col(TicketMessage.ticket_id) == ticket_id)
            .order_by(col(TicketMessage.created_at), col(TicketMessage.id))
        )
        return list(result.scalars())

    async def unfinished_count(self, user_id: int) -> int:
        """How many of the user's tickets are open or in progress."""
        result = await self.session.execute(
            sa.select(sa.func.count())
            .select_from(Ticket)
            .where(col(Ticket.user_id) == user_id, col(Ticket.status).in_(UNFINISHED))
        )
        return int(result.scalar_one())

    async def latest(
        self, user_id: int, statuses: Sequence[TicketStatus] = ACTIVE, *, lock: bool = False
    ) -> Ticket | None:
        """The user's newest ticket in one of `statuses`."""
        query = (
            sa.select(Ticket)
            .where(col(Ticket.user_id) == user_id, col(Ticket.status).in_(statuses))
            .order_by(col(Ticket.id).desc())
            .limit(1)
        )
        if lock:
            query = query.with_for_update()
        return (await self.session.execute(query)).scalar_one_or_none()

    async def open(self, user_id: int) -> tuple[Ticket, TicketStatus | None]:
        """The user's active ticket (a resolved one reopened) and the status it had, or a new
        one and None. A user has one conversation with support at a time: /support twice
        goes on with the same ticket."""
        ticket = await self.latest(user_id, lock=True)
        if ticket is not None:
            was = ticket.status
            if was == TicketStatus.RESOLVED:
                await self._reopen(ticket)
            return ticket, was
        ticket = Ticket(**checked(Ticket, user_id=user_id).model_dump(exclude_unset=True))
        self.session.add(ticket)
        await self.session.flush()
        await self.session.refresh(ticket)
        return ticket, None

    async def add_user_message(
        self, ticket: Ticket, text: str, telegram_message_id: int | None = None
    ) -> TicketMessage:
        """The user's message; a resolved ticket is reopened (the solution did not help)."""
        message = TicketMessage(
            **checked(
                TicketMessage,
                ticket_id=ticket.id,
                author=TicketAuthor.USER,
                text=text,
                telegram_message_id=telegram_message_id,
            ).model_dump(exclude_unset=True)
        )
        self.session.add(message)
        if ticket.status == TicketStatus.RESOLVED:
            await self._reopen(ticket)
        if not ticket.subject:
            ticket.subject = _subject(text)
        await self.session.flush()
        return message

    async def user_messages(self, ticket: Ticket) -> list[TicketMessage]:
        result = await self.session.execute(
            sa.select(TicketMessage)
            .where(
                col(TicketMessage.ticket_id) == ticket.id,
                col(TicketMessage.author) == TicketAuthor.USER,
            )
            .order_by(col(TicketMessage.id))
        )
        return list(result.scalars())

    async def reply(
        self,
        ticket: Ticket,
        staff_id: int | None,
        text: str,
        telegram_message_id: int | None = None,
    ) -> StaffReply:
        """A staff message: the first one sets first_response_at, an open ticket becomes in
        progress. The caller queues its delivery to `user` under `dedup_key`. Conflict when
        the ticket is finished or its user erased."""
        _require_unfinished(ticket)
        user = await self.session.get(User, ticket.user_id)
        if user is None:
            raise NotFound("user", ticket.user_id)
        if user.deleted_at is not None:
            raise Conflict(f"user {user.id} was erased")
        message = TicketMessage(
            **checked(
                TicketMessage,
                ticket_id=ticket.id,
                author=TicketAuthor.STAFF,
                staff_id=staff_id,
                text=text,
                telegram_message_id=telegram_message_id,
            ).model_dump(exclude_unset=True)
        )
        self.session.add(message)
        if ticket.first_response_at is None:
            ticket.first_response_at = db_now()
        if ticket.status == TicketStatus.OPEN:
            ticket.status = TicketStatus.IN_PROGRESS
        await self.session.flush()
        await self.session.refresh(message)
        return StaffReply(message, user)

    async def assign(self, ticket: Ticket, staff_id: int) -> Staff:
        """Assigns the ticket to an active staff member (NotFound otherwise); an open ticket
        becomes in progress."""
        _require_unfinished(ticket)
        staff = await self.session.get(Staff, staff_id)
        if staff is None or not staff.is_active:
            raise NotFound("staff", staff_id)
        ticket.assigned_staff_id = staff.id
        if ticket.status == TicketStatus.OPEN:
            ticket.status = TicketStatus.IN_PROGRESS
        await self.session.flush()
        await self.session.refresh(ticket)
        return staff

    async def resolve(self, ticket: Ticket, solution: str) -> None:
        _require_unfinished(ticket)
        ticket.solution = checked(Ticket, user_id=ticket.user_id, solution=solution).solution
        ticket.status = TicketStatus.RESOLVED
        ticket.resolved_at = db_now()
        await self.session.flush()
        await self.session.refresh(ticket)

    async def close(self, ticket: Ticket, solution: str | None) -> None:
        """Closes the ticket; without a solution (the user closed it) a resolved ticket's
        stays."""
        if ticket.status == TicketStatus.CLOSED:
            raise Conflict(f"ticket {ticket.id} is already closed")
        if solution is not None:
            ticket.solution = checked(Ticket, user_id=ticket.user_id, solution=solution).solution
        ticket.status = TicketStatus.CLOSED
        if ticket.resolved_at is None:
            ticket.resolved_at = db_now()
        ticket.closed_at = db_now()
        await self.session.flush()
        await self.session.refresh(ticket)

    async def _reopen(self, ticket: Ticket) -> None:
        ticket.status = TicketStatus.IN_PROGRESS if ticket.assigned_staff_id else TicketStatus.OPEN
        ticket.solution = None
        ticket.resolved_at = None
        await self.session.flush()

    async def staff_member(self, telegram_id: int) -> Staff | None:
        """The active staff member with this Telegram account (who answers in the group)."""
        result = await self.session.execute(
            sa.select(Staff).where(col(Staff.telegram_id) == telegram_id, col(Staff.is_active))
        )
        return result.scalar_one_or_none()

    async def topic(self, user_id: int, chat_id: int) -> int | None:
        """The thread id of the user's topic in the staff group `chat_id`."""
        result = await self.session.execute(
            sa.select(col(ForumTopic.message_thread_id)).where(
                col(ForumTopic.user_id) == user_id, col(ForumTopic.chat_id) == chat_id
            )
        )
        return result.scalar_one_or_none()

    async def user_topic(self, user_id: int) -> ForumTopic | None:
        """The user's topic in whichever staff group it is (the admin API knows no group)."""
        return await self.session.get(ForumTopic, user_id)

    async def topic_user(self, chat_id: int, message_thread_id: int) -> int | None:
        """Whose topic this is: a user id, or None for a topic that is not a user's."""
        result = await self.session.execute(
            sa.select(col(ForumTopic.user_id)).where(
                col(ForumTopic.chat_id) == chat_id,
                col(ForumTopic.message_thread_id) == message_thread_id,
            )
        )
        return result.scalar_one_or_none()

    async def save_topic(self, user_id: int, chat_id: int, message_thread_id: int) -> int:
        """Stores the user's topic and returns the thread id that holds: the one stored
        before when another update stored one in this chat first. A topic in another chat
        (the staff group was changed) is replaced."""
        values = checked(
            ForumTopic, user_id=user_id, chat_id=chat_id, message_thread_id=message_thread_id
        ).model_dump(exclude_unset=True)
        new = insert(ForumTopic).values(values)
        statement = new.on_conflict_do_update(
            index_elements=[col(ForumTopic.user_id)],
            set_={
                "chat_id": new.excluded.chat_id,
                "message_thread_id": new.excluded.message_thread_id,
                "created_at": sa.func.now(),
            },
            where=col(ForumTopic.chat_id) != new.excluded.chat_id,
        ).returning(col(ForumTopic.message_thread_id))
        saved = (await self.session.execute(statement)).scalar_one_or_none()
        if saved is not None:
            return int(saved)
        stored = await self.topic(user_id, chat_id)
        if stored is None:  # the user's topic moved to yet another chat meanwhile
            raise Conflict(f"the topic of user {user_id} is in another chat")
        return stored
