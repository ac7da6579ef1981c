"""Users, processed update ids and the conversation log: the bot's per-update writes.

These run for every update, so they are plain SQL on the driver (see db/driver.py); the SQL
names the columns of schema/users.py and the tests hold the two together.
"""

import json
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlmodel import col

from ..errors import NotFound
from ..schema import ConversationMessage, Direction, ProcessedUpdate, User
from .base import Repository, checked

RECORD_UPDATE = (
    "INSERT INTO processed_updates (update_id) VALUES ($1) ON CONFLICT DO NOTHING "
    "RETURNING update_id"
)
# A user who had blocked the bot and writes again is active again.
UPSERT_USER = (
    "INSERT INTO users (telegram_id, username, first_name, last_name, language_code) "
    "VALUES ($1, $2, $3, $4, $5) "
    "ON CONFLICT (telegram_id) DO UPDATE SET username = excluded.username, "
    "first_name = excluded.first_name, last_name = excluded.last_name, "
    "language_code = excluded.language_code, is_active = true, updated_at = now() "
    "RETURNING id, is_blocked"
)
LOG_MESSAGE = (
    "INSERT INTO conversation_messages (user_id, direction, text, telegram_message_id, context) "
    "VALUES ($1, $2, $3, $4, $5)"
)


class Registered(NamedTuple):
    id: int
    is_blocked: bool


class UpdateRepository(Repository):
    async def record(self, update_id: int) -> bool:
        """Marks an update as processed; False if it already was (a redelivery)."""
        row = checked(ProcessedUpdate, update_id=update_id)
        return await self.sql.fetchval(RECORD_UPDATE, row.update_id) is not None


class UserRepository(Repository):
    async def upsert(self, telegram_id: int, **profile: str | None) -> int:
        """Registers a user or refreshes their profile (one statement); returns the user id.
        profile: first_name, username, last_name, language_code."""
        return (await self.register(telegram_id, **profile)).id  # type: ignore[arg-type]

    async def register(
        self,
        telegram_id: int,
        *,
        first_name: str = "",
        username: str | None = None,
        last_name: str | None = None,
        language_code: str | None = None,
    ) -> Registered:
        """upsert, also telling whether staff blocked the user (the same statement)."""
        user = checked(
            User,
            telegram_id=telegram_id,
            first_name=first_name,
            username=username,
            last_name=last_name,
            language_code=language_code,
        )
        row = await self.sql.fetchrow(
            UPSERT_USER,
            user.telegram_id,
            user.username,
            user.first_name,
            user.last_name,
            user.language_code,
        )
        return Registered(row["id"], row["is_blocked"])

    async def get(self, user_id: int) -> User:
        user = await self.session.get(User, user_id)
        if user is None:
            raise NotFound("user", user_id)
        return user

    async def by_telegram_id(self, telegram_id: int) -> User:
        result = await self.session.execute(
            sa.select(User).where(col(User.telegram_id) == telegram_id)
        )
        user = result.scalar_one_or_none()
        if user is None:
            raise NotFound("user", telegram_id)
        return user


class MessageRepository(Repository):
    async def log(
        self,
        user_id: int,
        direction: Direction,
        text: str | None,
        *,
        telegram_message_id: int | None = None,
        context: dict[str, Any] | None = None,
    ) -> None:
        message = checked(
            ConversationMessage,
            user_id=user_id,
            direction=direction,
            text=text,
            telegram_message_id=telegram_message_id,
            context=context or {},
        )
        await self.sql.execute(
            LOG_MESSAGE,
            message.user_id,
            message.direction.value,
            message.text,
            message.telegram_message_id,
            # SQLAlchemy's JSONB codec on these connections takes JSON text.
            json.dumps(message.context),
        )
