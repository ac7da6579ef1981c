"""Bot API calls a handler wants made. They are collected during the update's transaction
and made only after it commits (see processing.py for why)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from aiogram.methods import EditMessageText, SendMessage, TelegramMethod
from aiogram.types import InlineKeyboardMarkup

Call = TelegramMethod[Any]


class Replies:
    def __init__(self) -> None:
        self._calls: list[Call] = []

    def add(self, chat_id: int, text: str, markup: InlineKeyboardMarkup | None = None) -> None:
        """A message to the chat."""
        self._calls.append(SendMessage(chat_id=chat_id, text=text, reply_markup=markup))

    def call(self, method: Call) -> None:
        """Any other Bot API call: an edit, a callback answer, an invoice."""
        self._calls.append(method)

    def __iter__(self) -> Iterator[Call]:
        return iter(self._calls)

    def texts(self) -> Iterator[str]:
        """What the user will read: the texts of the messages sent and edited, for the log."""
        for call in self._calls:
            if isinstance(call, SendMessage | EditMessageText) and call.text:
                yield call.text
