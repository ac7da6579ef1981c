"""An update's replies, sent right after its commit (processing.py), and what becomes of a reply
Telegram does not take at once.

The replies are logged as said in the update's transaction and a redelivery of the update
sends nothing, so this path makes each call once; what Telegram did not take goes to the
outbox (outbox.py), which makes it later, in the chat's order:

- 429 or 5xx, or no connection to the Bot API (telegram.not_taken): the call and the ones after
  it are queued, due after retry_after (429) or at once; the outbox retries with backoff;
- no answer within `reply_wait` seconds: the webhook stops waiting (Telegram would redeliver
  the update and hold the chat's next one behind it). The call and the ones after it are
  queued *held* (due only after the Bot API timeout has passed), and the request goes on in
  the background; its end settles them: answered, the call is marked sent; refused (429, 5xx),
  it is due for the outbox; no answer at all, it is given up as in doubt. The calls after it
  are then due, behind it;
- in doubt (telegram.in_doubt: the request went out and no answer came): never made again.

So a reply goes out at most once, and exactly once when Telegram answers, late or refusing.
Telegram has no idempotency key: a request that timed out may have been delivered (Telegram
acts on what it has read even when the bot has hung up), and making it again would be the one
way to send it twice. The window left: a bot killed while a held request is unsettled; its
rows come due after the hold and the outbox makes them, at least once, as for its own leases.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta

from aiogram import Bot
from aiogram.exceptions import AiogramError, TelegramForbiddenError, TelegramRetryAfter

from services.core.db import Database
from services.core.errors import DatabaseUnavailable

from .replies import Call
from .telegram import in_doubt, not_taken

log = logging.getLogger(__name__)

# A held row comes due this long after the Bot API timeout, should its settling never come
# (the bot killed meanwhile, or the database down when the answer came).
HOLD_MARGIN_SECONDS = 30.0


def chat_of(call: Call) -> int | None:
    chat_id = getattr(call, "chat_id", None)
    return chat_id if isinstance(chat_id, int) else None


class ReplySender:
    def __init__(
        self,
        database: Database,
        bot: Bot,
        outbox_queued: Callable[[], None],
        reply_wait: float,
        api_timeout: float,
    ) -> None:
        self._database = database
        self._bot = bot
        # Called after a commit that queued outbox messages (the delivery loop's wake-up).
        self._outbox_queued = outbox_queued
        self._reply_wait = reply_wait
        self._hold = timedelta(seconds=api_timeout + HOLD_MARGIN_SECONDS)
        # Requests handed over and not settled yet (a task needs a reference to live).
        self._settling: set[asyncio.Task[None]] = set()

    async def send(self, calls: list[Call]) -> None:
        """Makes the calls in order, for at most `reply_wait` seconds in all."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._reply_wait
        for index, call in enumerate(calls):
            request = asyncio.ensure_future(self._bot(call))
            done, _ = await asyncio.wait((request,), timeout=max(0.0, deadline - loop.time()))
            if not done:
                await self._hand_over(calls[index:], request)
                return
            try:
                request.result()
            except TelegramForbiddenError:
                chat_id = chat_of(call)
                if chat_id is not None:
                    await self._deactivate(chat_id)
            except AiogramError as error:
                if not_taken(error):
                    retry_after = error.retry_after if isinstance(error, TelegramRetryAfter) else 0
                    await self._queue(calls[index:], timedelta(seconds=retry_after))
                    return
                # In doubt, or refused for good (400): the call counter shows the failure.
                log.warning("%s to chat %s failed: %s", call.__api_method__, chat_of(call), error)

    async def settled(self) -> None:
        """Waits for the requests handed over (at shutdown); each ends by the Bot API
        timeout."""
        if self._settling:
            await asyncio.wait(self._settling)

    async def _queue(self, calls: list[Call], delay: timedelta) -> list[int | None]:
        """Queues the calls, due after `delay`; their outbox ids (None: not queued). Logged as
        sent with the update already, so queued without a user id: the outbox logs only what
        it sends on its own account. Callback and pre-checkout answers are not queued:
        Telegram forgets the query within seconds."""
        ids: list[int | None] = []
        try:
            async with self._database.unit_of_work() as uow:
                for call in calls:
                    chat_id = chat_of(call)
                    ids.append(
                        None
                        if chat_id is None
                        else await uow.outbox.enqueue_call(
                            chat_id,
                            call.__api_method__,
                            call.model_dump(mode="json", exclude_none=True, exclude_defaults=True),
                            delay=delay,
                        )
                    )
        except DatabaseUnavailable as error:
            log.warning(
                "%d replies lost: Telegram did not take them, database down: %s", len(calls), error
            )
            return []
        self._outbox_queued()
        return ids

    async def _hand_over(self, calls: list[Call], request: asyncio.Future[object]) -> None:
        ids = await self._queue(calls, self._hold)
        task = asyncio.create_task(self._settle(calls[0], ids, request))
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def _settle(
        self, call: Call, ids: list[int | None], request: asyncio.Future[object]
    ) -> None:
        """The held rows, once the handed-over request has ended (by the Bot API timeout)."""
        refused: Exception | None = None
        try:
            await request
        except Exception as error:  # what it was decides, below
            refused = error
        if not any(outbox_id is not None for outbox_id in ids):
            return
        first, due = ids[0], ids[1:]
        after = timedelta(0)
        try:
            async with self._database.unit_of_work() as uow:
                if refused is None:
                    if first is not None:
                        await uow.outbox.sent(first)
                elif in_doubt(refused):
                    log.warning(
                        "%s to chat %s in doubt: %s", call.__api_method__, chat_of(call), refused
                    )
                    if first is not None:
                        await uow.outbox.give_up(first, f"in doubt, not sent again: {refused}")
                else:  # refused: the outbox makes it (and handles 403 and 400 as its own)
                    due = ids
                    if isinstance(refused, TelegramRetryAfter):
                        after = timedelta(seconds=refused.retry_after)
                # Due in their order: one transaction, one now().
                for outbox_id in due:
                    if outbox_id is not None:
                        why = str(refused) if outbox_id == first else "held behind a slow reply"
                        await uow.outbox.retry(outbox_id, after, why)
        except DatabaseUnavailable as error:
            log.warning("held replies due when their hold ends, database down: %s", error)
            return
        self._outbox_queued()

    async def _deactivate(self, chat_id: int) -> None:
        """The user blocked the bot: marked inactive (writing again reactivates them)."""
        try:
            async with self._database.unit_of_work() as uow:
                # A private chat's id is its user's Telegram id.
                await uow.users.deactivate(telegram_id=chat_id)
        except DatabaseUnavailable as error:
            log.warning("user of chat %s blocked the bot, not recorded: %s", chat_id, error)
