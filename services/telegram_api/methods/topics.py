"""Forum topics (the staff group has one per user ticket)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiogram.methods import CreateForumTopic
from aiogram.types import ForumTopic, ForumTopicCreated

from ..envelope import bad_request
from .common import post

if TYPE_CHECKING:
    from ..bot import BotState

DEFAULT_TOPIC_COLOR = 7322096


async def create_forum_topic(bot: BotState, method: CreateForumTopic) -> ForumTopic:
    chat = bot.world.chat(method.chat_id)
    if not chat.chat.is_forum:
        raise bad_request("the chat is not a forum")
    if not 1 <= len(method.name) <= 128:
        raise bad_request("TOPIC_NAME_INVALID")
    color = method.icon_color or DEFAULT_TOPIC_COLOR
    # The topic's thread id is the id of the service message that opens it.
    thread_id = chat.last_message_id + 1
    topic = ForumTopic(
        message_thread_id=thread_id,
        name=method.name,
        icon_color=color,
        icon_custom_emoji_id=method.icon_custom_emoji_id,
    )
    chat.topics[thread_id] = topic
    post(
        bot,
        chat,
        thread_id,
        forum_topic_created=ForumTopicCreated(name=method.name, icon_color=color),
    )
    return topic
