"""Support tickets: a user opens one and writes to it, each message is copied into the user's
forum topic in the staff group, and staff answer, assign, resolve and close from there.

User side (private chat): /support [text] opens a ticket, or goes on with the user's active
one (open, in progress or resolved: one conversation with support at a time); text after the
command is its first message. While a ticket is active, the user's other messages (text, or a
photo or file) are added to it; a resolved ticket reopens. /close closes it. Without an active
ticket, messages go on to the catch-all answer (without a read: whether there is one comes with
the update's first read, processing.py).

The staff group (settings.staff_chat_id, a forum supergroup): each user gets one topic,
created the first time one of their messages needs it and stored at once in a transaction of
its own, so an update that fails later does not make a second one when Telegram redelivers
it. A new user's first update cannot store it so (their row commits only with that update):
it queues the topic in the outbox instead, and the bot makes it right after the commit. What
staff do there is support_staff.py. Without a staff group, tickets are answered through the
admin API only.

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
from aiogram.types import ForumTopic, Message

from services.core.db import Database, UnitOfWork
from services.core.errors import CoreError
from services.core.schema import Ticket, TicketMessage, TicketStatus, User

from .outbox import Task
from .replies import Replies
from .settings import BotSettings
from .support_staff import status_line
from .texts import FALLBACK, Text, text

log = logging.getLogger(__name__)

TOPIC_NAME_MAX = 128
# The outbox method of a topic the bot makes after a new user's first update commits: not a
# Bot API method, the outbox worker runs Support.catch_up for it.
TOPIC_TASK = "supportTopic"


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


def has_active_ticket(message: Message, active_ticket: bool) -> bool:
    """A filter: the user had an active ticket when the update was looked up (processing.py
    reads it with the update id, so a text without one goes to the catch-all answer without a
    read of its own)."""
    return active_ticket


def _name(user: User) -> str:
    return " ".join(part for part in (user.first_name, user.last_name) if part) or "User"


def _topic_name(user: User) -> str:
    suffix = f" ({user.telegram_id})"
    return _name(user)[: TOPIC_NAME_MAX - len(suffix)] + suffix


class Support:
    def __init__(self, staff_chat_id: int | None) -> None:
        self._staff_chat_id = staff_chat_id

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
                await self._post(uow, thread, status_line(ticket))

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
            thread = await self._create_topic(uow, bot, database, user, ticket)
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
            await self._post(uow, thread, status_line(ticket))
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
        self, uow: UnitOfWork, bot: Bot, database: Database, user: User, ticket: Ticket
    ) -> int | None:
        """Creates the user's topic (the one Bot API call a handler makes itself) and stores
        it at once in its own transaction: if this update fails later, its redelivery finds
        the topic instead of creating a second one. None when there is no topic yet: the group
        refuses topics, or the user is new and theirs comes after this update commits."""
        assert self._staff_chat_id is not None and user.id is not None
        topic: ForumTopic | None = None
        try:
            # Its connection is taken first: with the pool exhausted the update fails before
            # Telegram has a topic that nothing records.
            async with database.unit_of_work() as own:
                if not await own.users.exists(user.id):
                    await self._after_commit(uow, user.id, ticket)
                    return None
                topic = await self._new_topic(bot, user)
                if topic is None:
                    return None
                return await own.tickets.save_topic(
                    user.id, self._staff_chat_id, topic.message_thread_id
                )
        except CoreError as error:
            if topic is not None:
                log.error(
                    "support topic %s of user %s created in chat %s but not stored: %s",
                    topic.message_thread_id,
                    user.id,
                    self._staff_chat_id,
                    error,
                )
            raise

    async def _after_commit(self, uow: UnitOfWork, user_id: int, ticket: Ticket) -> None:
        """The user's row is new in this update: a topic stored now would refer to no user,
        and one kept only in this update's transaction is lost with it while Telegram keeps
        the topic (a redelivery made another). Queued with the update instead, it is made
        once the update commits; an update that fails queues nothing."""
        assert self._staff_chat_id is not None
        log.info("support topic of new user %s: made after their first update commits", user_id)
        await uow.outbox.enqueue_call(
            self._staff_chat_id,
            TOPIC_TASK,
            {"user_id": user_id, "ticket_id": ticket.id},
            dedup_key=f"support-topic:{user_id}",
        )

    async def catch_up(self, bot: Bot, database: Database, payload: dict[str, Any]) -> None:
        """The outbox's TOPIC_TASK: the user's topic, with the ticket's introduction and its
        messages so far (their dedup keys copy each once, however often this runs)."""
        user_id, ticket_id = int(payload["user_id"]), int(payload["ticket_id"])
        async with database.unit_of_work() as uow:
            # Locked as the user's own updates lock it: their next message waits for this
            # topic instead of making another.
            ticket = await uow.tickets.get(ticket_id, lock=True)
            messages = await uow.tickets.user_messages(ticket)
            await self._to_staff(uow, bot, database, user_id, ticket, messages, announce=True)

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


def outbox_tasks(settings: BotSettings, database: Database, bot: Bot) -> dict[str, Task]:
    """What the outbox worker runs for support's own outbox methods."""
    support = Support(settings.staff_chat_id)

    async def topic(payload: dict[str, Any]) -> None:
        await support.catch_up(bot, database, payload)

    return {TOPIC_TASK: topic}


def router(settings: BotSettings) -> Router:
    """The user's side, in private chats; the staff group's is support_staff.py."""
    support = Support(settings.staff_chat_id)
    handlers = Router(name="support")
    private = F.chat.type == "private"
    handlers.message.register(support.open_ticket, private, Command("support"))
    handlers.message.register(support.close_own_ticket, private, Command("close"))
    handlers.message.register(support.write_to_ticket, private, has_active_ticket, ticket_content)
    return handlers
