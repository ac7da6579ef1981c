"""Sending, editing, deleting, copying and forwarding messages; chat actions and button presses."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiogram.methods import (
    AnswerCallbackQuery,
    CopyMessage,
    DeleteMessage,
    EditMessageReplyMarkup,
    EditMessageText,
    ForwardMessage,
    SendChatAction,
    SendMessage,
)
from aiogram.types import Message, MessageId, MessageOriginChat, MessageOriginUser

from ..envelope import bad_request
from .common import check_thread, formatted_text, inline_markup, now, post, reply_to

if TYPE_CHECKING:
    from ..bot import BotState

CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
# Fields that say where and when a message is, not what it says: not carried by a copy.
_NOT_CONTENT = frozenset(
    {
        "message_id",
        "date",
        "chat",
        "from_user",
        "forward_origin",
        "reply_to_message",
        "edit_date",
        "author_signature",
        "sender_chat",
        "reply_markup",
        "message_thread_id",
        "is_topic_message",
    }
)


async def send_message(bot: BotState, method: SendMessage) -> Message:
    text, entities = formatted_text(method.text, method.parse_mode, method.entities)
    chat = bot.world.chat(method.chat_id)
    check_thread(chat, method.message_thread_id)
    return post(
        bot,
        chat,
        method.message_thread_id,
        text=text,
        entities=entities,
        reply_markup=inline_markup(method.reply_markup),
        reply_to_message=reply_to(chat, method.reply_parameters),
    )


def _own_message(bot: BotState, chat_id: int | str | None, message_id: int | None) -> Message:
    if chat_id is None or message_id is None:
        raise bad_request("message identifier is not specified")
    message = bot.world.chat(chat_id).message(message_id, "message to edit not found")
    if message.from_user is None or message.from_user.id != bot.me.id:
        raise bad_request("message can't be edited")
    return message


def _store_edit(bot: BotState, old: Message, **changes: Any) -> Message:
    if all(getattr(old, name) == value for name, value in changes.items()):
        raise bad_request(
            "message is not modified: specified new message content and reply markup are "
            "exactly the same as a current content and reply markup of the message"
        )
    # Validated again, not model_copy(): a copy would keep wrongly typed values silently.
    edited = Message.model_validate(
        {**old.model_dump(), **changes, "edit_date": int(now().timestamp())}
    )
    bot.world.chat(old.chat.id).remember(edited)
    return edited


async def edit_message_text(bot: BotState, method: EditMessageText) -> Message:
    text, entities = formatted_text(method.text or "", method.parse_mode, method.entities)
    old = _own_message(bot, method.chat_id, method.message_id)
    if old.text is None:
        raise bad_request("there is no text in the message to edit")
    return _store_edit(
        bot,
        old,
        text=text,
        entities=entities,
        reply_markup=inline_markup(method.reply_markup),
    )


async def edit_message_reply_markup(bot: BotState, method: EditMessageReplyMarkup) -> Message:
    old = _own_message(bot, method.chat_id, method.message_id)
    return _store_edit(bot, old, reply_markup=inline_markup(method.reply_markup))


async def delete_message(bot: BotState, method: DeleteMessage) -> bool:
    chat = bot.world.chat(method.chat_id)
    chat.message(method.message_id, "message to delete not found")
    del chat.messages[method.message_id]
    return True


async def answer_callback_query(bot: BotState, method: AnswerCallbackQuery) -> bool:
    if bot.callback_queries.pop(method.callback_query_id, None) is None:
        raise bad_request("query is too old and response timeout expired or query ID is invalid")
    return True


async def send_chat_action(bot: BotState, method: SendChatAction) -> bool:
    if method.action not in CHAT_ACTIONS:
        raise bad_request("wrong parameter action in request")
    chat = bot.world.chat(method.chat_id)
    check_thread(chat, method.message_thread_id)
    return True


def _content(message: Message) -> dict[str, Any]:
    """What a message says (text, caption, media, invoice), without where and when."""
    keep = set(type(message).model_fields) - _NOT_CONTENT
    return message.model_dump(include=keep, exclude_none=True)


def _source(bot: BotState, chat_id: int | str, message_id: int, missing: str) -> Message:
    return bot.world.chat(chat_id).message(message_id, missing)


async def copy_message(bot: BotState, method: CopyMessage) -> MessageId:
    source = _source(bot, method.from_chat_id, method.message_id, "message to copy not found")
    if source.text is None and source.caption is None and source.invoice is None:
        raise bad_request("message can't be copied")
    content = _content(source)
    if method.caption is not None:
        content["caption"] = method.caption
    chat = bot.world.chat(method.chat_id)
    check_thread(chat, method.message_thread_id)
    copy = post(
        bot,
        chat,
        method.message_thread_id,
        reply_markup=inline_markup(method.reply_markup),
        **content,
    )
    return MessageId(message_id=copy.message_id)


async def forward_message(bot: BotState, method: ForwardMessage) -> Message:
    source = _source(bot, method.from_chat_id, method.message_id, "message to forward not found")
    origin: MessageOriginUser | MessageOriginChat = (
        MessageOriginUser(date=source.date, sender_user=source.from_user)
        if source.from_user is not None
        else MessageOriginChat(date=source.date, sender_chat=source.chat)
    )
    content = _content(source)
    chat = bot.world.chat(method.chat_id)
    check_thread(chat, method.message_thread_id)
    return post(bot, chat, method.message_thread_id, forward_origin=origin, **content)
