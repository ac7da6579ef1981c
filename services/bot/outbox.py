"""Delivers the outbox: Bot API calls other services queued (staff replies, reminders),
within Telegram's rate limits, with retries.

Each batch is claimed in a short transaction that moves the rows' available_at a lease into
the future, then sent, then marked in another transaction. A bot that dies in between sends
those rows again once the lease runs out: delivery is at least once, never lost. A call that
got no answer (a timeout) is the exception: Telegram may have acted on it, and it is given up,
not made again (at most once; why in sending.py). A chat's messages go in order: one retried
puts the chat's later ones of its batch back behind it. The outbox is polled (LISTEN/NOTIFY
does not work through PgBouncer in transaction mode), and woken at once when this process
queued something itself.

Besides Bot API calls and notices, a row may name one of the bot's own tasks: work that must
follow a commit (a new user's support topic, support.py). The task runs in the row's place,
with a call's retries: Telegram's 429 and network errors try again, a task that cannot be
done gives up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from typing import Any

import aiogram.methods
from aiogram import Bot
from aiogram.exceptions import (
    AiogramError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramRetryAfter,
)
from aiogram.methods import SendMessage, TelegramMethod
from aiogram.types import Message
from pydantic import ValidationError

from services.core.db import Database
from services.core.errors import Conflict, DatabaseUnavailable, NotFound
from services.core.repositories.outbox import NOTICE_METHOD, Claimed
from services.core.schema import Direction

from .metrics import BotMetrics
from .telegram import in_doubt
from .texts import Text, language_of, text

log = logging.getLogger(__name__)

MESSAGE_MAX = 4096  # Telegram's limit on a message's text
# A task the bot runs for an outbox row, given the row's payload.
Task = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class OutboxLimits:
    # Telegram allows about 30 messages per second in all, and one per second in a chat.
    per_second: float = 25.0
    chat_interval: float = 1.0
    batch_size: int = 50
    poll_seconds: float = 1.0
    # Seconds a claimed row stays invisible to the next claim (then it is sent again).
    lease_seconds: float = 120.0
    # Attempts Telegram did not take (5xx, unreachable) before a message is given up, each
    # after twice the wait before it, at most retry_cap_seconds: about 25 minutes of failures.
    # The cap is how late a message may be once Telegram is back (60 s left the chaos
    # suite's replies a minute behind after a 70 s outage).
    max_attempts: int = 100
    retry_cap_seconds: float = 15.0
    # Seconds between two readings of the outbox's depth and oldest age for /metrics.
    gauge_seconds: float = 5.0


@cache
def _methods() -> dict[str, type[TelegramMethod[Any]]]:
    """aiogram's Bot API methods by lower-cased name (Telegram ignores the case)."""
    found: dict[str, type[TelegramMethod[Any]]] = {}
    for name in aiogram.methods.__all__:
        candidate = getattr(aiogram.methods, name)
        api_name = getattr(candidate, "__api_method__", None)
        if isinstance(candidate, type) and isinstance(api_name, str):
            found[api_name.lower()] = candidate
    return found


async def _either(*events: asyncio.Event) -> None:
    """Waits until one of the events is set."""
    waits = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()


def _call(method: str, payload: dict[str, Any]) -> TelegramMethod[Any]:
    """The Bot API call a row stands for; ValueError when it cannot be made."""
    if method == NOTICE_METHOD:
        return _worded(payload)
    model = _methods().get(method.lower())
    if model is None:
        raise ValueError(f"unknown Bot API method {method!r}")
    return model.model_validate(payload)


def _worded(payload: dict[str, Any]) -> SendMessage:
    """A notice (services/core/notices.py) as a message in the recipient's language."""
    values = payload.get("values")
    try:
        key = Text(str(payload.get("notice")))
        if not isinstance(values, dict):
            raise TypeError("values must be an object")
        said = text(language_of(payload.get("language")), key, **values)
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"notice {payload.get('notice')!r} cannot be worded: {error!r}") from error
    if len(said) > MESSAGE_MAX and isinstance(values.get("text"), str):
        said = values["text"]  # a staff reply that fills a message is sent as written
    thread = payload.get("message_thread_id")  # a notice posted in a support topic
    return SendMessage(chat_id=payload["chat_id"], text=said, message_thread_id=thread)


class OutboxWorker:
    def __init__(
        self,
        database: Database,
        bot: Bot,
        metrics: BotMetrics,
        limits: OutboxLimits,
        tasks: Mapping[str, Task] | None = None,
    ) -> None:
        self._database = database
        self._bot = bot
        self._tasks = dict(tasks or {})
        self.metrics = metrics
        self._limits = limits
        self._next_any = 0.0
        self._next_in_chat: dict[int, float] = {}
        self._woken = asyncio.Event()
        self._next_gauge = 0.0

    def wake(self) -> None:
        """Something was queued: deliver now rather than at the next poll."""
        self._woken.set()

    async def run(self, stopping: asyncio.Event) -> None:
        """Delivers until `stopping` is set; the batch in hand is finished first."""
        loop = asyncio.get_running_loop()
        while not stopping.is_set():
            self._woken.clear()
            try:
                delivered = await self.deliver_due()
                if loop.time() >= self._next_gauge:
                    self._next_gauge = loop.time() + self._limits.gauge_seconds
                    await self.measure()
            except DatabaseUnavailable as error:
                log.warning("outbox: database unavailable (%s)", error)
                delivered = 0
            except Exception:
                # A bug in one batch must not end delivery for the life of the process.
                log.exception("outbox: delivery failed")
                delivered = 0
            if not delivered:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._limits.poll_seconds):
                        await _either(stopping, self._woken)

    async def measure(self) -> None:
        """Reads the outbox's depth and how long its oldest due message has waited. Only due
        messages count: a reminder queued for tomorrow, or a message Telegram asked us to
        hold for retry_after, is not late (counting them paged staff for every booking)."""
        async with self._database.unit_of_work() as uow:
            depth, age = await uow.outbox.backlog()
        self.metrics.outbox_depth.set(depth)
        self.metrics.outbox_oldest.set(age)

    async def deliver_due(self) -> int:
        """Claims and delivers one batch of due messages; returns how many it claimed.
        Chats proceed concurrently, each in the order its messages were queued."""
        now = asyncio.get_running_loop().time()
        self._next_in_chat = {chat: at for chat, at in self._next_in_chat.items() if at > now}
        batch = await self._claim()
        by_chat: dict[int, list[Claimed]] = defaultdict(list)
        for message in sorted(batch, key=lambda claimed: claimed.id):
            by_chat[message.chat_id].append(message)
        await asyncio.gather(*(self._deliver_chat(messages) for messages in by_chat.values()))
        return len(batch)

    async def _claim(self) -> list[Claimed]:
        lease = timedelta(seconds=self._limits.lease_seconds)
        async with self._database.unit_of_work() as uow:
            return await uow.outbox.claim(self._limits.batch_size, lease)

    async def _deliver_chat(self, messages: list[Claimed]) -> None:
        for position, message in enumerate(messages):
            await self._pace(message.chat_id)
            retry_after = await self._deliver(message)
            if retry_after is not None:
                # The chat's later messages must not overtake it: back in line behind it.
                later = [later.id for later in messages[position + 1 :]]
                if later:
                    async with self._database.unit_of_work() as uow:
                        await uow.outbox.put_back(later, timedelta(seconds=retry_after))
                return

    async def _pace(self, chat_id: int) -> None:
        """Waits for this chat's next slot and the next slot overall, and takes both."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        start = max(now, self._next_any, self._next_in_chat.get(chat_id, 0.0))
        self._next_any = start + 1.0 / self._limits.per_second
        self._next_in_chat[chat_id] = start + self._limits.chat_interval
        if start > now:
            await asyncio.sleep(start - now)

    async def _deliver(self, message: Claimed) -> float | None:
        """Makes the row's call; the seconds until it is due again when it is retried."""
        said = None
        result: object = None
        try:
            task = self._tasks.get(message.method)
            if task is not None:
                await task(message.payload)
            else:
                call = _call(message.method, message.payload)
                result = await self._bot(call)
                said = getattr(call, "text", None)
        except TelegramRetryAfter as error:
            # Telegram says when: the row waits exactly that long, and so does the chat.
            self._next_in_chat[message.chat_id] = (
                asyncio.get_running_loop().time() + error.retry_after
            )
            await self._retry(message, error.retry_after, str(error))
            return error.retry_after
        except TelegramForbiddenError as error:
            # Blocked by the user (or kicked from the chat): retrying cannot help.
            await self._give_up(message, str(error), deactivate=True)
        except (TelegramBadRequest, ValidationError, ValueError, NotFound, Conflict) as error:
            await self._give_up(message, str(error))
        except AiogramError as error:  # Telegram's 5xx, network trouble, no answer
            if task is None and in_doubt(error):
                # Telegram may have delivered it and has no idempotency key: at most once
                # (services/bot/sending.py). The row says so for whoever looks.
                await self._give_up(message, f"in doubt, not sent again: {error}")
            elif message.attempts >= self._limits.max_attempts:
                await self._give_up(message, str(error))
            else:
                wait = min(2.0**message.attempts, self._limits.retry_cap_seconds)
                await self._retry(message, wait, str(error))
                return wait
        else:
            await self._sent(message, result, said)
        return None

    async def _sent(self, message: Claimed, result: object, said: str | None) -> None:
        async with self._database.unit_of_work() as uow:
            await uow.outbox.sent(message.id)
            if message.user_id is not None:
                await uow.messages.log(
                    message.user_id,
                    Direction.OUT,
                    said,
                    telegram_message_id=result.message_id if isinstance(result, Message) else None,
                    context={"outbox_id": message.id},
                )
        self.metrics.outbox.labels("sent").inc()

    async def _retry(self, message: Claimed, after_seconds: float, error: str) -> None:
        async with self._database.unit_of_work() as uow:
            await uow.outbox.retry(message.id, timedelta(seconds=after_seconds), error)
        self.metrics.outbox.labels("retried").inc()

    async def _give_up(self, message: Claimed, error: str, deactivate: bool = False) -> None:
        log.warning("outbox message %s failed: %s", message.id, error)
        async with self._database.unit_of_work() as uow:
            await uow.outbox.give_up(message.id, error)
            if deactivate:
                # A private chat's id is its user's Telegram id.
                if message.user_id is not None:
                    await uow.users.deactivate(user_id=message.user_id)
                else:
                    await uow.users.deactivate(telegram_id=message.chat_id)
        self.metrics.outbox.labels("failed").inc()
