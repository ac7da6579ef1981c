"""Users, processed update ids and the conversation log: the bot's per-update writes.

These run for every update, so they are plain SQL on the driver (see db/driver.py); the SQL
names the columns of schema/users.py and the tests hold the two together.
"""

import json
from datetime import datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlmodel import col

from ..errors import NotFound
from ..schema import (
    BIGINT_MAX,
    Appointment,
    ConversationMessage,
    Direction,
    Payment,
    ProcessedUpdate,
    Ticket,
    User,
)
from ..schema.users import search_text
from .base import Repository, checked
from .pages import Key, Slice, page

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


class History(NamedTuple):
    """A user's latest rows of each kind, newest first."""

    tickets: list[Ticket]
    appointments: list[Appointment]
    payments: list[Payment]


def search_condition(q: str) -> sa.ColumnElement[bool]:
    """Username or name containing `q` (one trigram index over the three), or the exact
    Telegram id when `q` is a number."""
    pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    condition = search_text(User.__table__.c).ilike(pattern)  # type: ignore[attr-defined]
    if q.isascii() and q.isdigit() and int(q) <= BIGINT_MAX:  # not "²", which int() refuses
        return sa.or_(condition, col(User.telegram_id) == int(q))
    return condition


def live_users(
    *,
    q: str | None = None,
    is_active: bool | None = None,
    is_blocked: bool | None = None,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
) -> sa.Select[Any]:
    """Live (not erased) users matching the filters; paged newest first, the order of the
    partial index ix_users_live_created."""
    query = sa.select(User).where(col(User.deleted_at).is_(None))
    if q is not None:
        query = query.where(search_condition(q))
    if is_active is not None:
        query = query.where(col(User.is_active) == is_active)
    if is_blocked is not None:
        query = query.where(col(User.is_blocked) == is_blocked)
    if created_from is not None:
        query = query.where(col(User.created_at) >= created_from)
    if created_to is not None:
        query = query.where(col(User.created_at) < created_to)
    return query


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

    async def get(self, user_id: int, *, lock: bool = False) -> User:
        user = await self.session.get(User, user_id, with_for_update=lock)
        if user is None:
            raise NotFound("user", user_id)
        return user

    async def search(self, *, after: Key | None, limit: int, **filters: Any) -> Slice[User]:
        """A page of live users newest first; filters: those of live_users."""
        return await page(self.session, live_users(**filters), User, after, limit)

    async def history(self, user_id: int, rows: int) -> History:
        """The user's latest `rows` tickets, appointments (by start) and payments."""

        async def latest(query: sa.Select[Any]) -> list[Any]:
            return list((await self.session.execute(query.limit(rows))).scalars())

        return History(
            tickets=await latest(
                sa.select(Ticket)
                .where(col(Ticket.user_id) == user_id)
                .order_by(col(Ticket.created_at).desc())
            ),
            appointments=await latest(
                sa.select(Appointment)
                .where(col(Appointment.user_id) == user_id)
                .order_by(col(Appointment.starts_at).desc())
            ),
            payments=await latest(
                sa.select(Payment)
                .where(col(Payment.user_id) == user_id)
                .order_by(col(Payment.created_at).desc())
            ),
        )

    async def set_blocked(self, user_id: int, blocked: bool) -> tuple[User, bool]:
        """Blocks or unblocks the user; the user as they are now and whether they were
        blocked before (equal to `blocked` when nothing was written). The row is locked: of
        two concurrent identical requests, the second sees the first's change."""
        user = await self.get(user_id, lock=True)
        was = user.is_blocked
        if was != blocked:
            user.is_blocked = blocked
            await self.save(user)
        return user, was

    async def deactivate(
        self, *, user_id: int | None = None, telegram_id: int | None = None
    ) -> None:
        """Marks a user inactive: they blocked the bot, so nothing more can reach them
        (writing to the bot again reactivates them, see UPSERT_USER). Names the user by
        row id when known, else by Telegram id (a private chat's id is its user's)."""
        if user_id is not None:
            which = col(User.id) == user_id
        elif telegram_id is not None:
            which = col(User.telegram_id) == telegram_id
        else:
            raise ValueError("deactivate needs a user id or a Telegram id")
        await self.session.execute(
            sa.update(User)
            .where(which)
            .values(is_active=False)  # and updated_at: schema/base.py, updated_field
            .execution_options(synchronize_session=False)
        )

    async def exists(self, user_id: int) -> bool:
        """Whether the user's row is there, committed (or written in this transaction)."""
        return await self.session.get(User, user_id) is not None

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
