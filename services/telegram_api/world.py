"""Chats and their messages as the bot sees them, with Telegram's per-chat message ids."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiogram.types import Chat, ForumTopic, Message, Update

from .envelope import bad_request
from .ids import IdFloor

# Telegram's supergroup and channel ids are -100 followed by the internal id.
SUPERGROUP_ID_BELOW = -1_000_000_000_000


@dataclass
class ChatState:
    chat: Chat
    history_size: int
    ids: IdFloor
    messages: dict[int, Message] = field(default_factory=dict)
    topics: dict[int, ForumTopic] = field(default_factory=dict)
    last_message_id: int = 0

    def __post_init__(self) -> None:
        # A chat met after a restart continues above every id the bot was handed out before.
        self.last_message_id = max(self.last_message_id, self.ids.floor)

    def next_message_id(self) -> int:
        self.last_message_id += 1
        self.ids.claim(self.last_message_id)
        return self.last_message_id

    def remember(self, message: Message) -> None:
        self.messages[message.message_id] = message
        self.last_message_id = max(self.last_message_id, message.message_id)
        self.ids.claim(self.last_message_id)
        if len(self.messages) > self.history_size:
            # The oldest goes (ids are stored in arrival order): editing it is "not found".
            del self.messages[next(iter(self.messages))]

    def message(self, message_id: int, missing: str) -> Message:
        found = self.messages.get(message_id)
        if found is None:
            raise bad_request(missing)
        return found


def _new_chat(chat_id: int) -> Chat:
    """A chat the bot has not seen yet: a user's private chat for a positive id, a forum
    supergroup (a staff group with topics) for -100..., a basic group otherwise."""
    if chat_id > 0:
        return Chat(id=chat_id, type="private", first_name=f"User {chat_id}")
    if chat_id < SUPERGROUP_ID_BELOW:
        return Chat(id=chat_id, type="supergroup", title=f"Group {chat_id}", is_forum=True)
    return Chat(id=chat_id, type="group", title=f"Group {chat_id}")


class World:
    def __init__(self, history_size: int, ids: IdFloor) -> None:
        self.chats: dict[int, ChatState] = {}
        self._history_size = history_size
        self._ids = ids

    def chat(self, chat_id: int | str) -> ChatState:
        if isinstance(chat_id, str):
            for state in self.chats.values():
                if state.chat.username and f"@{state.chat.username}" == chat_id:
                    return state
            raise bad_request("chat not found")
        known = self.chats.get(chat_id)
        if known is None:
            known = self.chats[chat_id] = ChatState(
                _new_chat(chat_id), self._history_size, self._ids
            )
        return known

    def observe(self, update: Update) -> None:
        """Learn the chats and messages an incoming update shows (a user's message to the bot
        takes the chat's next message id, so the bot's replies come after it)."""
        for message in _messages_in(update):
            state = self.chats.get(message.chat.id)
            if state is None:
                state = self.chats[message.chat.id] = ChatState(
                    message.chat, self._history_size, self._ids
                )
            else:
                state.chat = message.chat
            state.remember(message)


def _messages_in(update: Update) -> list[Message]:
    found: list[Any] = [
        update.message,
        update.edited_message,
        update.channel_post,
        update.edited_channel_post,
    ]
    if update.callback_query is not None:
        found.append(update.callback_query.message)
    return [message for message in found if isinstance(message, Message)]
