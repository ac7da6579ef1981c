"""Replies a handler wants sent. They are collected during the update's transaction and go
out only after it commits (see processing.py for why)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Reply:
    chat_id: int
    text: str


class Replies:
    def __init__(self) -> None:
        self._items: list[Reply] = []

    def add(self, chat_id: int, text: str) -> None:
        self._items.append(Reply(chat_id, text))

    def __iter__(self) -> Iterator[Reply]:
        return iter(self._items)
