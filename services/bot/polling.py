"""Polling mode, for development behind NAT: the bot asks for updates with getUpdates instead
of receiving webhook POSTs.

getUpdates confirms every update below the offset it is given, so the offset moves past an
update only once it is settled: applied, a duplicate, refused or throttled. An update that was
not applied (the database down, a handler's error) is tried again in place, with backoff, and
never skipped; updates are processed one at a time, in the order Telegram gave them. A crash
loses nothing: the updates not confirmed come again, and those applied but not yet confirmed
are recognised as duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from time import perf_counter

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramRetryAfter
from aiogram.methods import GetUpdates
from aiogram.types import Update

from .metrics import BotMetrics, Outcome
from .processing import UpdateProcessor, update_type
from .telegram import publish_commands

log = logging.getLogger(__name__)

# Outcomes after which the same update is tried again: nothing of it was written.
RETRIED = frozenset({Outcome.FAILED, Outcome.UNAVAILABLE})


@dataclass
class Backoff:
    """Seconds to wait after each failure in a row: first, doubling up to cap."""

    first: float = 1.0
    cap: float = 30.0
    _failures: int = field(default=0, init=False)

    def next(self) -> float:
        delay: float = min(self.cap, self.first * 2.0**self._failures)
        self._failures += 1
        return delay

    def reset(self) -> None:
        self._failures = 0


async def _stopped_within(stopping: asyncio.Event, seconds: float) -> bool:
    """Waits `seconds` or until stopping is set; whether it is."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stopping.wait()
    return stopping.is_set()


class Poller:
    def __init__(
        self,
        bot: Bot,
        processor: UpdateProcessor,
        metrics: BotMetrics,
        allowed_updates: list[str],
        timeout: int,
        backoff: Backoff | None = None,
    ) -> None:
        self._bot = bot
        self._processor = processor
        self._metrics = metrics
        self._allowed_updates = allowed_updates
        self._timeout = timeout  # seconds one getUpdates waits for updates
        self._backoff = backoff or Backoff()

    async def run(self, stopping: asyncio.Event) -> None:
        """Polls and processes until `stopping` is set: the long poll is cancelled at once,
        an update being processed is finished first."""
        if not await self._prepare(stopping):
            return
        offset = 0  # not positive: confirms nothing
        while (updates := await self._poll(offset, stopping)) is not None:
            for update in updates:
                if stopping.is_set() or not await self._settle(update, stopping):
                    return  # the rest is not confirmed: it comes again at the next start
                offset = update.update_id + 1

    async def _prepare(self, stopping: asyncio.Event) -> bool:
        """Removes a webhook (getUpdates is refused while one is set), keeping the pending
        updates, and publishes the command menu; retried until the Bot API answers."""
        while True:
            try:
                await self._bot.delete_webhook(drop_pending_updates=False)
                await publish_commands(self._bot)
            except TelegramAPIError as error:
                delay = self._backoff.next()
                log.warning("cannot start polling (%s); retrying in %.0f s", error, delay)
                if await _stopped_within(stopping, delay):
                    return False
                continue
            self._backoff.reset()
            log.info("polling for updates")
            return True

    async def _poll(self, offset: int, stopping: asyncio.Event) -> list[Update] | None:
        """The next updates, confirming those below offset; None once stopping is set."""
        method = GetUpdates(
            offset=offset or None, timeout=self._timeout, allowed_updates=self._allowed_updates
        )
        # The HTTP request outlives the long poll it asks for by the session's own timeout.
        request_timeout = int(self._bot.session.timeout + self._timeout)
        while not stopping.is_set():
            request = asyncio.ensure_future(self._bot(method, request_timeout=request_timeout))
            stopped = asyncio.ensure_future(stopping.wait())
            await asyncio.wait((request, stopped), return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if stopping.is_set():
                # Whatever it brought is not confirmed: it comes again at the next start.
                request.cancel()
                with contextlib.suppress(asyncio.CancelledError, TelegramAPIError):
                    await request
                return None
            try:
                updates = request.result()
            except TelegramRetryAfter as error:
                delay = float(error.retry_after)
                log.warning("getUpdates: Telegram asks to wait %.0f s", delay)
            except TelegramAPIError as error:
                # Network errors, Telegram's 5xx, 409 while a webhook is set or another
                # instance polls the same token.
                delay = self._backoff.next()
                log.warning("getUpdates failed (%s); retrying in %.0f s", error, delay)
            else:
                self._backoff.reset()
                return updates
            await _stopped_within(stopping, delay)
        return None

    async def _settle(self, update: Update, stopping: asyncio.Event) -> bool:
        """Processes the update until it is settled; False if stopping came first (the
        update is left unconfirmed)."""
        while True:
            started = perf_counter()
            kind = update_type(update)
            outcome = await self._processor.attempt(update)
            self._metrics.updates.labels(kind, outcome).inc()
            self._metrics.latency.labels(kind).observe(perf_counter() - started)
            if outcome not in RETRIED:
                self._backoff.reset()
                return True
            delay = self._backoff.next()
            log.warning("update %s %s; trying again in %.0f s", update.update_id, outcome, delay)
            if await _stopped_within(stopping, delay):
                return False
