"""Pending updates of one bot: queued until confirmed (getUpdates offset) or delivered
(webhook), in the order they arrived."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from aiogram.types import Update

from .envelope import ApiError

# What Telegram sends when allowed_updates is empty: everything but these.
_OPT_IN_ONLY = frozenset({"chat_member", "message_reaction", "message_reaction_count"})


def update_type(update: Update) -> str:
    for name in type(update).model_fields:
        if name != "update_id" and getattr(update, name) is not None:
            return name
    return "unknown"


def chat_key(update: Update) -> int | None:
    """The chat (or user) an update belongs to: updates with one key are delivered in order."""
    event: Any = getattr(update, update_type(update), None)
    for path in (("chat",), ("message", "chat"), ("from_user",), ("user",)):
        value = event
        for attribute in path:
            value = getattr(value, attribute, None)
        if value is not None and isinstance(getattr(value, "id", None), int):
            return int(value.id)
    return None


def allowed(update: Update, allowed_updates: list[str] | None) -> bool:
    kind = update_type(update)
    if allowed_updates:
        return kind in allowed_updates
    return kind not in _OPT_IN_ONLY


def _first_id() -> int:
    """Where a new queue's update ids start: the clock in microseconds (below 2**53, so JSON
    readers keep them exact). Telegram's ids only grow, and a bot ignores an id it has
    processed, so a restarted stand-in must not start again from 1: this stays ahead as long
    as it hands out fewer than a million updates a second."""
    return time.time_ns() // 1000


class UpdateQueue:
    def __init__(self) -> None:
        self._pending: dict[int, Update] = {}
        self._last_id = _first_id()
        self._arrived = asyncio.Event()
        self._polls = 0  # getUpdates calls so far: a newer one ends an older one's wait
        self.listeners: list[Callable[[Update], None]] = []

    def next_id(self) -> int:
        return self._last_id + 1

    def push(self, update: Update) -> None:
        self._last_id = max(self._last_id, update.update_id)
        self._pending[update.update_id] = update
        self._wake()
        for listener in self.listeners:
            listener(update)

    def _wake(self) -> None:
        self._arrived.set()
        self._arrived = asyncio.Event()

    def pending(self) -> list[Update]:
        return list(self._pending.values())

    def confirm(self, update_id: int) -> None:
        self._pending.pop(update_id, None)

    def take(self, chat_id: int) -> list[Update]:
        """Remove and return a chat's pending updates, oldest first: for a sender that
        delivers them to the webhook itself (the load tests play Telegram's side)."""
        taken = [u for u in self._pending.values() if chat_key(u) == chat_id]
        for update in taken:
            del self._pending[update.update_id]
        return sorted(taken, key=lambda update: update.update_id)

    def drop_all(self) -> None:
        self._pending.clear()

    async def get(
        self, offset: int, limit: int, wait: float, allowed_updates: list[str] | None
    ) -> list[Update]:
        """getUpdates: confirm below a positive offset, keep only the last -offset for a
        negative one, then wait up to `wait` seconds for something to return.

        Like Telegram, a second poller ends the first one's wait with 409 Conflict: two bot
        instances polling one token is a deployment bug worth seeing.
        """
        self._polls += 1
        poll = self._polls
        self._wake()
        if offset > 0:
            for update_id in [i for i in self._pending if i < offset]:
                del self._pending[update_id]
        elif offset < 0:
            for update_id in list(self._pending)[:offset]:
                del self._pending[update_id]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            if poll != self._polls:
                raise ApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; "
                    "make sure that only one bot instance is running",
                )
            ready = [u for u in self._pending.values() if allowed(u, allowed_updates)]
            remaining = deadline - loop.time()
            if ready or remaining <= 0:
                return ready[:limit]
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                return []
