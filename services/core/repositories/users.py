"""Users, processed update ids and the conversation log: the bot's per-update writes."""

from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col

from ..errors import NotFound
from ..schema import ConversationMessage, Direction, ProcessedUpdate, User
from .base import Repository, validated

_PROFILE_FIELDS = ("username", "first_name", "last_name", "language_code")


class UpdateRepository(Repository):
    async def record(self, update_id: int) -> bool:
        """Marks an update as processed; False if it already was (a redelivery)."""
        row = validated(ProcessedUpdate, update_id=update_id)
        stmt = (
            insert(ProcessedUpdate)
            .values(update_id=row.update_id)
            .on_conflict_do_nothing()
            .returning(col(ProcessedUpdate.update_id))
        )
        return (await self.session.execute(stmt)).first() is not None


class UserRepository(Repository):
    async def upsert(
        self,
        telegram_id: int,
        *,
        first_name: str = "",
        username: str | None = None,
        last_name: str | None = None,
        language_code: str | None = None,
    ) -> int:
        """Registers a user or refreshes their profile (one statement); returns the user id.
        A user who had blocked the bot and writes again is active again."""
        user = validated(
            User,
            telegram_id=telegram_id,
            first_name=first_name,
            username=username,
            last_name=last_name,
            language_code=language_code,
        )
        profile = {name: getattr(user, name) for name in _PROFILE_FIELDS}
        stmt = (
            insert(User)
            .values(telegram_id=user.telegram_id, **profile)
            .on_conflict_do_update(
                index_elements=[col(User.telegram_id)],
                set_={**profile, "is_active": True, "updated_at": sa.func.now()},
            )
            .returning(col(User.id))
        )
        # RETURNING the primary key: never NULL, whatever the model's Optional says.
        return cast(int, (await self.session.execute(stmt)).scalar_one())

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
        message = validated(
            ConversationMessage,
            user_id=user_id,
            direction=direction,
            text=text,
            telegram_message_id=telegram_message_id,
            context=context or {},
        )
        await self.session.execute(
            insert(ConversationMessage).values(
                user_id=message.user_id,
                direction=message.direction,
                text=message.text,
                telegram_message_id=message.telegram_message_id,
                context=message.context,
            )
        )
