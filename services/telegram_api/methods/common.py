"""Helpers shared by the method handlers: message creation and Telegram's checks."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiogram.types import InlineKeyboardMarkup, Message, MessageEntity, ReplyParameters

from ..envelope import bad_request
from ..formatting import parse_html
from ..world import ChatState

if TYPE_CHECKING:
    from ..bot import BotState

MAX_TEXT = 4096
MAX_CALLBACK_DATA = 64  # bytes


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def formatted_text(
    text: str, parse_mode: object, entities: list[MessageEntity] | None
) -> tuple[str, list[MessageEntity] | None]:
    """The text and entities Telegram stores. HTML is parsed; Markdown modes are stored as
    sent (not implemented). parse_mode left to aiogram's default arrives as a Default."""
    if isinstance(parse_mode, str) and parse_mode.lower() == "html":
        text, entities = parse_html(text)
    if not text.strip():
        raise bad_request("message text is empty")
    if len(text) > MAX_TEXT:
        raise bad_request("message is too long")
    return text, entities or None


def inline_markup(markup: object) -> InlineKeyboardMarkup | None:
    """Only an inline keyboard belongs to the message; reply keyboards live in the client."""
    if not isinstance(markup, InlineKeyboardMarkup):
        return None
    for row in markup.inline_keyboard:
        for button in row:
            data = button.callback_data
            if data is not None and not 1 <= len(data.encode()) <= MAX_CALLBACK_DATA:
                raise bad_request("BUTTON_DATA_INVALID")
    return markup


def check_thread(chat: ChatState, thread_id: int | None) -> None:
    if thread_id is not None and thread_id not in chat.topics:
        raise bad_request("message thread not found")


def reply_to(chat: ChatState, reply: ReplyParameters | None) -> Message | None:
    if reply is None:
        return None
    if reply.message_id is None or (reply.chat_id is not None and reply.chat_id != chat.chat.id):
        raise bad_request("message to be replied not found")
    return chat.message(reply.message_id, "message to be replied not found")


def post(bot: BotState, chat: ChatState, thread_id: int | None, **content: Any) -> Message:
    """A new message from the bot, with the chat's next message id."""
    message = Message(
        message_id=chat.next_message_id(),
        date=now(),
        chat=chat.chat,
        from_user=bot.me,
        message_thread_id=thread_id,
        is_topic_message=True if thread_id is not None else None,
        **content,
    )
    chat.remember(message)
    return message
