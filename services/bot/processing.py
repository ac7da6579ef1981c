"""One update, one unit of work: the update id, the user upsert, the inbound and outbound
message log and the handler's own writes commit together or not at all.

Replies are sent after the commit. Sent before it, a reply of an update whose transaction
then fails (database gone, a later handler error) would go out again when Telegram
redelivers the update. After it, a redelivery finds the update id recorded and does nothing,
so a reply goes out at most once; the price is that a crash between commit and send loses
that reply, which the user notices and repeats. The outbound message is logged in the same
transaction (what the bot answered to this update), so the log never depends on Telegram
being reachable. Messages that must not be lost (staff replies, reminders) go through the
outbox instead.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from aiogram import Bot, Dispatcher
from aiogram.exceptions import TelegramAPIError, TelegramForbiddenError
from aiogram.types import Chat, Update
from aiogram.types import User as TelegramUser
from sqlmodel import col

from services.core.db import Database, UnitOfWork
from services.core.errors import DatabaseUnavailable
from services.core.schema import Direction, User

from .metrics import Outcome
from .replies import Replies
from .texts import Text, language_of, text
from .throttle import Throttle, Verdict

log = logging.getLogger(__name__)


def update_type(update: Update) -> str:
    try:
        return update.event_type
    except LookupError:  # a type newer than this aiogram knows
        return "unknown"


def _sender(update: Update) -> TelegramUser | None:
    try:
        sender = getattr(update.event, "from_user", None)
    except LookupError:
        return None
    return sender if isinstance(sender, TelegramUser) and not sender.is_bot else None


def _chat(update: Update) -> Chat | None:
    try:
        chat = getattr(update.event, "chat", None)
    except LookupError:
        return None
    return chat if isinstance(chat, Chat) else None


class UpdateProcessor:
    def __init__(
        self, database: Database, dispatcher: Dispatcher, bot: Bot, throttle: Throttle
    ) -> None:
        self._database = database
        self._dispatcher = dispatcher
        self._bot = bot
        self._throttle = throttle

    async def process(self, update: Update) -> Outcome:
        """Applies the update once and sends its replies. Raises DatabaseUnavailable when the
        database is down and whatever a handler raised; nothing is written then."""
        replies = Replies()
        async with self._database.unit_of_work() as uow:
            if not await uow.updates.record(update.update_id):
                return Outcome.DUPLICATE
            outcome = await self._apply(uow, update, replies)
        await self._send(replies)
        return outcome

    async def _apply(self, uow: UnitOfWork, update: Update, replies: Replies) -> Outcome:
        sender = _sender(update)
        user_id = None
        if sender is not None:
            user_id = await uow.users.upsert(
                sender.id,
                first_name=sender.first_name,
                username=sender.username,
                last_name=sender.last_name,
                language_code=sender.language_code,
            )
        message = update.message
        if message is not None and user_id is not None:
            await uow.messages.log(
                user_id,
                Direction.IN,
                message.text or message.caption,
                telegram_message_id=message.message_id,
                context={"update_id": update.update_id},
            )
        language = language_of(sender.language_code if sender else None)
        outcome = Outcome.HANDLED
        verdict = self._throttle.check(sender.id) if sender is not None else Verdict.ALLOW
        if verdict is Verdict.ALLOW:
            await self._dispatcher.feed_update(
                self._bot, update, uow=uow, user_id=user_id, language=language, replies=replies
            )
        else:
            outcome = Outcome.THROTTLED
            chat = _chat(update)
            if verdict is Verdict.WARN and chat is not None:
                replies.add(chat.id, text(language, Text.SLOW_DOWN))
        if user_id is not None:
            for reply in replies:
                await uow.messages.log(
                    user_id, Direction.OUT, reply.text, context={"update_id": update.update_id}
                )
        return outcome

    async def _send(self, replies: Replies) -> None:
        for reply in replies:
            try:
                await self._bot.send_message(reply.chat_id, reply.text)
            except TelegramForbiddenError:
                await self._deactivate(reply.chat_id)
            except TelegramAPIError as error:
                # Committed already: a redelivery would not resend it, so answering Telegram
                # with an error would only cost a retry. The call counter shows the failure.
                log.warning("reply to chat %s not sent: %s", reply.chat_id, error)

    async def _deactivate(self, chat_id: int) -> None:
        """The user blocked the bot: marked inactive (writing again reactivates them)."""
        try:
            async with self._database.unit_of_work() as uow:
                await uow.session.execute(
                    sa.update(User)
                    .where(col(User.telegram_id) == chat_id)  # a private chat's id is the user's
                    .values(is_active=False, updated_at=sa.func.now())
                    .execution_options(synchronize_session=False)
                )
        except DatabaseUnavailable as error:
            log.warning("user of chat %s blocked the bot, not recorded: %s", chat_id, error)
