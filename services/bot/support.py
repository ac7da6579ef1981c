"""Support tickets: a user opens one and writes to it, each message is copied into the user's
forum topic in the staff group, and staff answer, assign, resolve and close from there.

User side (private chat): /support [text] opens a ticket, or goes on with the user's active
one (open, in progress or resolved: one conversation with support at a time); text after the
command is its first message. While a ticket is active, the user's other messages (text, or a
photo or file) are added to it; a resolved ticket reopens. /close closes it. Without an active
ticket, messages go on to the catch-all answer.

Staff side (settings.staff_chat_id, a forum supergroup): each user gets one topic, created
the first time one of their messages needs it. In a user's topic an active staff member
(Staff.telegram_id) answers with plain text, which reaches the user framed in the user's
language; the first to answer is assigned. /assign takes the ticket, /resolve <solution> and
/close <solution> end it; the user is told each time, and the audit log records it as it does
for the admin API. Anyone else is told they are not staff; bots' messages, messages outside
topics and topics that are not a user's are ignored. Without a staff group, tickets are
answered through the admin API only.

Everything the user or the staff group must get goes through the outbox, in the update's
transaction; the staff member's own command is answered in the topic after the commit. Copies
use copyMessage, so staff see a screenshot or a file as the user sent it, not only its text.
Notices the bot posts on its own in the staff group are in English (the group is shared and
has no language of its own); answers to a staff member's command are in theirs.
"""

from __future__ import annotations

import logging
from typing import Any

from aiogram import Bot, F, Router
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError
from aiogram.filters import Command, CommandObject
from aiogram.methods import SendMessage
from aiogram.types import ForumTopic, Message

from services.core.db import Database, UnitOfWork
from services.core.errors import Conflict
from services.core.notices import Notice
from services.core.repositories.tickets import UNFINISHED
from services.core.schema import Staff, Ticket, TicketMessage, TicketStatus, User

from .replies import Replies
from .settings import BotSettings
from .texts import FALLBACK, Text, text

log = logging.getLogger(__name__)

TOPIC_NAME_MAX = 128
# What forum_topics' foreign key to users is called: refused while the user's row is new.
TOPIC_USER_KEY = "fk_forum_topics_user_id_users"


def ticket_content(message: Message) -> dict[str, str] | bool:
    """A filter: what a user's message adds to a ticket (as `content`), or False for what
    is not for support (commands, stickers, service messages)."""
    if message.text is not None:
        return False if message.text.startswith("/") else {"content": message.text}
    if message.caption:
        return {"content": message.caption}
    if message.photo or message.document:
        return {"content": f"[{message.content_type}]"}
    return False


def _name(user: User) -> str:
    return " ".join(part for part in (user.first_name, user.last_name) if part) or "User"


def _topic_name(user: User) -> str:
    suffix = f" ({user.telegram_id})"
    return _name(user)[: TOPIC_NAME_MAX - len(suffix)] + suffix


class Support:
    def __init__(self, staff_chat_id: int | None) -> None:
        self._staff_chat_id = staff_chat_id

    # User side

    async def open_ticket(
        self,
        message: Message,
        command: CommandObject,
        uow: UnitOfWork,
        user_id: int | None,
        language: str,
        replies: Replies,
        bot: Bot,
        database: Database,
    ) -> None:
        if user_id is None:
            return
        ticket, was = await uow.tickets.open(user_id)
        added = []
        if command.args:
            added.append(
                await uow.tickets.add_user_message(ticket, command.args, message.message_id)
            )
        await self._to_staff(
            uow,
            bot,
            database,
            user_id,
            ticket,
            added,
            announce=was is None,
            reopened=was == TicketStatus.RESOLVED,
        )
        replies.add(message.chat.id, text(language, Text.SUPPORT_OPENED, ticket=ticket.id))

    async def write_to_ticket(
        self,
        message: Message,
        content: str,
        uow: UnitOfWork,
        user_id: int | None,
        language: str,
        replies: Replies,
        bot: Bot,
        database: Database,
    ) -> None:
        ticket = await uow.tickets.latest(user_id, lock=True) if user_id is not None else None
        if user_id is None or ticket is None:
            raise SkipHandler  # not for support: on to the catch-all answer
        reopened = ticket.status == TicketStatus.RESOLVED
        added = await uow.tickets.add_user_message(ticket, content, message.message_id)
        await self._to_staff(uow, bot, database, user_id, ticket, [added], reopened=reopened)
        replies.add(message.chat.id, text(language, Text.SUPPORT_RECEIVED, ticket=ticket.id))

    async def close_own_ticket(
        self,
        message: Message,
        uow: UnitOfWork,
        user_id: int | None,
        language: str,
        replies: Replies,
    ) -> None:
        if user_id is None:
            return
        ticket = await uow.tickets.latest(user_id, lock=True)
        if ticket is None:
            replies.add(message.chat.id, text(language, Text.SUPPORT_NO_TICKET))
            return
        await uow.tickets.close(ticket, None)
        closed = text(
            language, Text.SUPPORT_CLOSED, ticket=ticket.id, solution=ticket.solution or ""
        )
        replies.add(message.chat.id, closed.rstrip())
        if self._staff_chat_id is not None:
            thread = await uow.tickets.topic(user_id, self._staff_chat_id)
            if thread is not None:
                await self._post(uow, thread, _status(ticket))

    async def _to_staff(
        self,
        uow: UnitOfWork,
        bot: Bot,
        database: Database,
        user_id: int,
        ticket: Ticket,
        added: list[TicketMessage],
        *,
        announce: bool = False,
        reopened: bool = False,
    ) -> None:
        """Copies the user's new messages into their topic. A topic created just now gets the
        ticket's introduction and its messages so far (the outbox's dedup keys copy each
        message once)."""
        if self._staff_chat_id is None:
            return
        user = await uow.users.get(user_id)
        thread = await uow.tickets.topic(user_id, self._staff_chat_id)
        if thread is None:
            thread = await self._create_topic(uow, bot, database, user)
            if thread is None:
                return
            announce = True
            added = await uow.tickets.user_messages(ticket)
        if announce:
            intro = text(
                FALLBACK,
                Text.STAFF_NEW_TICKET,
                ticket=ticket.id,
                name=_name(user),
                telegram_id=user.telegram_id,
                user_language=user.language_code or "-",
            )
            await self._post(uow, thread, intro, dedup_key=f"ticket-new:{ticket.id}")
        elif reopened:
            await self._post(uow, thread, _status(ticket))
        for message in added:
            if message.telegram_message_id is None:  # not written in Telegram
                continue
            await uow.outbox.enqueue_call(
                self._staff_chat_id,
                "copyMessage",
                {
                    "chat_id": self._staff_chat_id,
                    "from_chat_id": user.telegram_id,
                    "message_id": message.telegram_message_id,
                    "message_thread_id": thread,
                },
                dedup_key=f"ticket-copy:{message.id}",
            )

    async def _create_topic(
        self, uow: UnitOfWork, bot: Bot, database: Database, user: User
    ) -> int | None:
        """Creates the user's topic (the one Bot API call a handler makes itself) and stores
        it at once in its own transaction: if this update fails later, its redelivery finds
        the topic instead of creating a second one. None when the group refuses topics."""
        assert self._staff_chat_id is not None and user.id is not None
        topic: ForumTopic | None = None
        try:
            # Its connection is taken first: with the pool exhausted the update fails before
            # Telegram has a topic that nothing records.
            async with database.unit_of_work() as own:
                topic = await self._new_topic(bot, user)
                if topic is None:
                    return None
                return await own.tickets.save_topic(
                    user.id, self._staff_chat_id, topic.message_thread_id
                )
        except Conflict as error:
            if topic is None or error.constraint != TOPIC_USER_KEY:
                raise
        # The user's first update: their row commits with this update, and the topic's row
        # can only commit with it (a failure of this update loses both).
        return await uow.tickets.save_topic(user.id, self._staff_chat_id, topic.message_thread_id)

    async def _new_topic(self, bot: Bot, user: User) -> ForumTopic | None:
        assert self._staff_chat_id is not None
        try:
            return await bot.create_forum_topic(chat_id=self._staff_chat_id, name=_topic_name(user))
        except (TelegramBadRequest, TelegramForbiddenError) as error:
            # Not a forum, or the bot may not manage topics: retrying will not help, the
            # ticket is kept and staff see it in the admin API. Other errors (network, 429)
            # fail the update, and Telegram's redelivery tries again.
            log.error("no support topic in chat %s: %s", self._staff_chat_id, error)
            return None

    async def _post(
        self, uow: UnitOfWork, thread: int, said: str, dedup_key: str | None = None
    ) -> None:
        assert self._staff_chat_id is not None
        await uow.outbox.enqueue(
            self._staff_chat_id, said, dedup_key=dedup_key, extra={"message_thread_id": thread}
        )

    # Staff side

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
        _answer(replies, message, _status(ticket, language))
        notice = Notice.TICKET_RESOLVED if resolving else Notice.TICKET_CLOSED
        await uow.outbox.tell(user, notice, {"ticket": ticket.id, "solution": solution})


def _status(ticket: Ticket, language: str = FALLBACK) -> str:
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
    support = Support(settings.staff_chat_id)
    handlers = Router(name="support")
    private = F.chat.type == "private"
    handlers.message.register(support.open_ticket, private, Command("support"))
    handlers.message.register(support.close_own_ticket, private, Command("close"))
    handlers.message.register(support.write_to_ticket, private, ticket_content)
    if settings.staff_chat_id is not None:
        in_topic = (
            (F.chat.id == settings.staff_chat_id)
            & F.is_topic_message
            & F.message_thread_id
            & F.from_user
            & ~F.from_user.is_bot
        )
        handlers.message.register(support.staff_assign, in_topic, Command("assign"))
        handlers.message.register(support.staff_resolve, in_topic, Command("resolve"))
        handlers.message.register(support.staff_close, in_topic, Command("close"))
        handlers.message.register(support.staff_reply, in_topic, F.text & ~F.text.startswith("/"))
    return handlers
