"""The Bot API methods the stand-in implements, with Telegram's state and error rules: each
handler takes the bot's state and aiogram's validated method model."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiogram.methods import (
    AnswerCallbackQuery,
    AnswerPreCheckoutQuery,
    CopyMessage,
    CreateForumTopic,
    DeleteMessage,
    DeleteMyCommands,
    DeleteWebhook,
    EditMessageReplyMarkup,
    EditMessageText,
    ForwardMessage,
    GetFile,
    GetMe,
    GetMyCommands,
    GetUpdates,
    GetWebhookInfo,
    SendChatAction,
    SendInvoice,
    SendMessage,
    SetMyCommands,
    SetWebhook,
    TelegramMethod,
)

from . import commands, files, messages, payments, topics, updates

if TYPE_CHECKING:
    from ..bot import BotState

Handler = Callable[["BotState", Any], Awaitable[object]]

HANDLERS: dict[type[TelegramMethod[Any]], Handler] = {
    GetMe: updates.get_me,
    GetFile: files.get_file,
    GetUpdates: updates.get_updates,
    SetWebhook: updates.set_webhook,
    DeleteWebhook: updates.delete_webhook,
    GetWebhookInfo: updates.get_webhook_info,
    SendMessage: messages.send_message,
    EditMessageText: messages.edit_message_text,
    EditMessageReplyMarkup: messages.edit_message_reply_markup,
    DeleteMessage: messages.delete_message,
    AnswerCallbackQuery: messages.answer_callback_query,
    SendChatAction: messages.send_chat_action,
    CopyMessage: messages.copy_message,
    ForwardMessage: messages.forward_message,
    SendInvoice: payments.send_invoice,
    AnswerPreCheckoutQuery: payments.answer_pre_checkout_query,
    CreateForumTopic: topics.create_forum_topic,
    SetMyCommands: commands.set_my_commands,
    GetMyCommands: commands.get_my_commands,
    DeleteMyCommands: commands.delete_my_commands,
}
