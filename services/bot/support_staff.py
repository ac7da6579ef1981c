"""Support in the staff group: in a user's topic an active staff member (Staff.telegram_id)
answers with plain text, which reaches the user in their language (a notice, through the
outbox); the first to answer is assigned. /assign takes the ticket, /resolve <solution> and
/close <solution> end it; the user is told each time, and the audit log records it as it
does for the admin API. Anyone else is told they are not staff; bots' messages, messages
outside topics and topics that are not a user's are ignored. The staff member's own command
is answered in the topic, in their language."""

from __future__ import annotations

from typing import Any

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.methods import SendMessage
from aiogram.types import Message

from services.core.db import UnitOfWork
from services.core.notices import Notice
from services.core.repositories.tickets import UNFINISHED
from services.core.schema import Staff, Ticket, TicketStatus, User

from .replies import Replies
from .settings import BotSettings
from .texts import FALLBACK, Text, text


class StaffDesk:
    async def _staff_in_topic(
        self, message: Message, uow: UnitOfWork, language: str, replies: Replies
    ) -> tuple[User, Staff] | None:
        """The topic's user and the staff member writing; None when the message is not for
        support (the sender was told if they are not staff)."""
        assert message.message_thread_id is not None and message.from_user is not None
        user_id = await uow.tickets.topic_user(message.chat.id, message.message_thread_id)
        if user_id is None:
            return None
        staff = await uow.tickets.staff_member(message.from_user.id)
        if staff is None:
            unknown = text(language, Text.STAFF_UNKNOWN, telegram_id=message.from_user.id)
            _answer(replies, message, unknown)
            return None
        return await uow.users.get(user_id), staff

    async def _ticket_for_staff(
        self,
        message: Message,
        uow: UnitOfWork,
        language: str,
        replies: Replies,
        user: User,
        *,
        unfinished: bool,
    ) -> Ticket | None:
        assert user.id is not None
        if unfinished:
            ticket = await uow.tickets.latest(user.id, UNFINISHED, lock=True)
        else:
            ticket = await uow.tickets.latest(user.id, lock=True)
        if ticket is None:
            _answer(replies, message, text(language, Text.STAFF_NO_TICKET))
        return ticket

    async def staff_reply(
        self, message: Message, uow: UnitOfWork, language: str, replies: Replies
    ) -> None:
        found = await self._staff_in_topic(message, uow, language, replies)
        if found is None:
            return
        user, staff = found
        ticket = await self._ticket_for_staff(
            message, uow, language, replies, user, unfinished=True
        )
        if ticket is None or staff.id is None or message.text is None:
            return
        sent = await uow.tickets.reply(ticket, staff.id, message.text, message.message_id)
        reply = {"ticket": ticket.id, "text": message.text}
        outbox_id = await uow.outbox.tell(user, Notice.TICKET_REPLY, reply, sent.dedup_key)
        _audit(
            uow,
            staff,
            "ticket.reply",
            ticket,
            {"ticket_message_id": sent.message.id, "outbox_id": outbox_id},
        )
        if ticket.assigned_staff_id is None:  # the first to answer takes the ticket
            await uow.tickets.assign(ticket, staff.id)
            _audit(uow, staff, "ticket.assign", ticket, {"assigned_staff_id": [None, staff.id]})

    async def staff_assign(
        self, message: Message, uow: UnitOfWork, language: str, replies: Replies
    ) -> None:
        found = await self._staff_in_topic(message, uow, language, replies)
        if found is None:
            return
        user, staff = found
        ticket = await self._ticket_for_staff(
            message, uow, language, replies, user, unfinished=True
        )
        if ticket is None or staff.id is None:
            return
        previous = ticket.assigned_staff_id
        await uow.tickets.assign(ticket, staff.id)
        _audit(uow, staff, "ticket.assign", ticket, {"assigned_staff_id": [previous, staff.id]})
        _answer(
            replies,
            message,
            text(language, Text.STAFF_ASSIGNED, ticket=ticket.id, staff=staff.name),
        )
        taken = {"ticket": ticket.id, "staff": staff.name}
        await uow.outbox.tell(user, Notice.TICKET_IN_PROGRESS, taken)

    async def staff_resolve(
        self,
        message: Message,
        command: CommandObject,
        uow: UnitOfWork,
        language: str,
        replies: Replies,
    ) -> None:
        await self._finish(message, command, uow, language, replies, TicketStatus.RESOLVED)

    async def staff_close(
        self,
        message: Message,
        command: CommandObject,
        uow: UnitOfWork,
        language: str,
        replies: Replies,
    ) -> None:
        await self._finish(message, command, uow, language, replies, TicketStatus.CLOSED)

    async def _finish(
        self,
        message: Message,
        command: CommandObject,
        uow: UnitOfWork,
        language: str,
        replies: Replies,
        status: TicketStatus,
    ) -> None:
        found = await self._staff_in_topic(message, uow, language, replies)
        if found is None:
            return
        user, staff = found
        solution = (command.args or "").strip()
        if not solution:
            _answer(replies, message, text(language, Text.STAFF_NEEDS_SOLUTION))
            return
        resolving = status == TicketStatus.RESOLVED
        ticket = await self._ticket_for_staff(
            message, uow, language, replies, user, unfinished=resolving
        )
        if ticket is None:
            return
        previous = ticket.status
        if resolving:
            await uow.tickets.resolve(ticket, solution)
        else:
            await uow.tickets.close(ticket, solution)
        action = "ticket.resolve" if resolving else "ticket.close"
        _audit(uow, staff, action, ticket, {"status": [previous, status]})
        _answer(replies, message, status_line(ticket, language))
        notice = Notice.TICKET_RESOLVED if resolving else Notice.TICKET_CLOSED
        await uow.outbox.tell(user, notice, {"ticket": ticket.id, "solution": solution})


def status_line(ticket: Ticket, language: str = FALLBACK) -> str:
    """The ticket's status as the topic shows it (the group's language unless a staff
    member asked)."""
    return text(language, Text.STAFF_STATUS, ticket=ticket.id, status=ticket.status.value)


def _audit(
    uow: UnitOfWork, staff: Staff, action: str, ticket: Ticket, summary: dict[str, Any]
) -> None:
    """The entry the admin API writes for the same action: the log shows who did what, in
    the group or in the admin API."""
    uow.audit.record(staff.id, staff.name, action, "ticket", ticket.id, summary)


def _answer(replies: Replies, message: Message, said: str) -> None:
    """A reply in the topic the staff member wrote in."""
    replies.call(
        SendMessage(chat_id=message.chat.id, message_thread_id=message.message_thread_id, text=said)
    )


def router(settings: BotSettings) -> Router:
    handlers = Router(name="support-staff")
    if settings.staff_chat_id is None:
        return handlers
    desk = StaffDesk()
    in_topic = (
        (F.chat.id == settings.staff_chat_id)
        & F.is_topic_message
        & F.message_thread_id
        & F.from_user
        & ~F.from_user.is_bot
    )
    handlers.message.register(desk.staff_assign, in_topic, Command("assign"))
    handlers.message.register(desk.staff_resolve, in_topic, Command("resolve"))
    handlers.message.register(desk.staff_close, in_topic, Command("close"))
    handlers.message.register(desk.staff_reply, in_topic, F.text & ~F.text.startswith("/"))
    return handlers
