"""One update, one unit of work: the update id, the user upsert, the inbound and outbound
message log and the handler's own writes commit together or not at all.

Replies are sent after the commit. Sent before it, a reply of an update whose transaction
then fails (database gone, a later handler error) would go out again when Telegram
redelivers the update. After it, a redelivery finds the update id recorded and does nothing,
so a reply goes out at most once; the price is that a crash between commit and send loses
that reply, which the user notices and repeats. The outbound message is logged in the same
transaction (what the bot answered to this update), so the log never depends on Telegram
being reachable. A reply Telegram does not take (429, 5xx, unreachable, or no answer in a few
seconds) goes to the outbox, never twice (sending.py); messages that must not be lost (staff
replies, reminders) go through the outbox from the start.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiogram import Bot, Dispatcher
from aiogram.methods import AnswerCallbackQuery
from aiogram.types import CallbackQuery, Chat, Message, Update
from aiogram.types import User as TelegramUser

from services.core.db import Database, UnitOfWork
from services.core.errors import DatabaseUnavailable, InvalidInput
from services.core.repositories.intake import AlreadyApplied, Intake

from .metrics import Outcome
from .payments import refuse
from .replies import Replies
from .sending import ReplySender
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
    """The chat the update happened in: a message's, or a pressed button's message's."""
    try:
        event: object = update.event
    except LookupError:
        return None
    if isinstance(event, CallbackQuery):
        event = event.message
    chat = getattr(event, "chat", None)
    return chat if isinstance(chat, Chat) else None


def _is_payment(update: Update) -> bool:
    """Telegram's steps of a payment the user started: never throttled, since a pre-checkout
    query left unanswered fails the payment and a dropped successful_payment loses a charge."""
    message = update.message
    return update.pre_checkout_query is not None or (
        message is not None and message.successful_payment is not None
    )


class UpdateProcessor:
    def __init__(
        self,
        database: Database,
        dispatcher: Dispatcher,
        bot: Bot,
        throttle: Throttle,
        outbox_queued: Callable[[], None],
        *,
        reply_wait: float,
        api_timeout: float,
    ) -> None:
        self._database = database
        self._dispatcher = dispatcher
        self._bot = bot
        self._throttle = throttle
        # Called after a commit that queued outbox messages (the delivery loop's wake-up).
        self._outbox_queued = outbox_queued
        self.sender = ReplySender(database, bot, outbox_queued, reply_wait, api_timeout)

    async def process(self, update: Update) -> Outcome:
        """Applies the update once and sends its replies. Raises DatabaseUnavailable when the
        database is down and whatever a handler raised; nothing is written then."""
        replies = Replies()
        try:
            async with self._database.unit_of_work() as uow:
                outcome = await self._apply(uow, update, replies)
                queued = uow.outbox.queued
        except AlreadyApplied:
            return Outcome.DUPLICATE
        except InvalidInput as error:
            # Data the schema refuses is refused again on every redelivery: the update is
            # recorded as done, so Telegram stops sending it, and nothing else is kept.
            log.warning("update %s refused: %s", update.update_id, error)
            async with self._database.unit_of_work() as uow:
                await uow.updates.record(update.update_id)
            return Outcome.INVALID
        if outcome is Outcome.DUPLICATE:
            return outcome
        if queued:
            self._outbox_queued()
        await self.sender.send(list(replies))
        return outcome

    async def attempt(self, update: Update) -> Outcome:
        """process(), with a database outage or a handler's error logged and returned as
        UNAVAILABLE or FAILED: nothing was written, and the update must come again."""
        try:
            return await self.process(update)
        except DatabaseUnavailable as error:
            log.warning("update %s not applied, database unavailable: %s", update.update_id, error)
            return Outcome.UNAVAILABLE
        except Exception:
            log.exception("update %s failed; it will come again", update.update_id)
            return Outcome.FAILED

    async def _apply(self, uow: UnitOfWork, update: Update, replies: Replies) -> Outcome:
        """The update's own writes (its id, the user, the log) go through an Intake the unit
        of work writes with the handlers' (two round trips when they write nothing)."""
        sender = _sender(update)
        chat = _chat(update)
        message = update.message
        # Users are the people who talk to the bot in private; a staff group's members
        # (support topics) are not registered as users by writing there.
        if sender is not None and (chat is None or chat.type == "private"):
            logs = isinstance(message, Message)
            intake = Intake(
                update.update_id,
                sender.id,
                first_name=sender.first_name,
                username=sender.username,
                last_name=sender.last_name,
                language_code=sender.language_code,
                inbound=(message.text or message.caption) if message is not None else None,
                message_id=message.message_id if message is not None else None,
                logs_inbound=logs,
            )
        else:
            intake = Intake(update.update_id)
        seen = await intake.look(uow.sql.alone)
        if seen.applied:
            return Outcome.DUPLICATE
        uow.defer(intake)
        user_id, blocked = seen.user_id, seen.blocked
        language = language_of(sender.language_code if sender else None)
        if blocked:
            return await self._blocked(uow, update, user_id, language, replies)
        if update_type(update) == "unknown":
            # A type newer than this aiogram: nothing handles it (and aiogram would log its
            # whole content, user text included). Recorded, so it is not delivered again.
            return Outcome.HANDLED
        outcome = Outcome.HANDLED
        verdict = Verdict.ALLOW
        if sender is not None and not _is_payment(update):
            verdict = self._throttle.check(sender.id)
        if verdict is Verdict.ALLOW:
            await self._feed(uow, update, user_id, language, replies, seen.active_ticket)
        else:
            outcome = Outcome.THROTTLED
            warning = text(language, Text.SLOW_DOWN) if verdict is Verdict.WARN else None
            if update.callback_query is not None:
                # A pressed button spins until it is answered: answered, warning or not.
                query_id = update.callback_query.id
                replies.call(AnswerCallbackQuery(callback_query_id=query_id, text=warning))
            elif warning is not None and chat is not None:
                replies.add(chat.id, warning)
        intake.answered(list(replies.texts()))
        return outcome

    async def _feed(
        self,
        uow: UnitOfWork,
        update: Update,
        user_id: int | None,
        language: str,
        replies: Replies,
        active_ticket: bool,
    ) -> None:
        await self._dispatcher.feed_update(
            self._bot,
            update,
            uow=uow,
            user_id=user_id,
            language=language,
            replies=replies,
            # Whether the user had an active support ticket when the update was looked up.
            active_ticket=active_ticket,
            # For the one write that must commit on its own (a support topic's mapping).
            database=self._database,
        )

    async def _blocked(
        self, uow: UnitOfWork, update: Update, user_id: int | None, language: str, replies: Replies
    ) -> Outcome:
        """Staff blocked the user: the update is recorded and ignored (no reply, no booking,
        no ticket). A payment they start is refused at once (unanswered, Telegram would fail
        it only after its timeout, with a generic error). A payment Telegram already charged
        is still applied, since money must never be lost, and logged for staff; its receipt
        is not sent."""
        if update.pre_checkout_query is not None:
            refusal = refuse(update.pre_checkout_query, language, Text.CHECKOUT_BLOCKED)
            replies.call(refusal)
        message = update.message
        if message is not None and message.successful_payment is not None:
            log.warning(
                "payment %s from blocked user %s recorded",
                message.successful_payment.telegram_payment_charge_id,
                user_id,
            )
            # Its replies are discarded: nothing is sent to a blocked user.
            await self._feed(uow, update, user_id, language, Replies(), active_ticket=False)
        return Outcome.BLOCKED
