"""The outbox: Bot API calls other services want made, delivered later by the bot
(services/bot/outbox.py): queued here, claimed in batches under a lease, then marked sent,
retried later or given up."""

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import aliased
from sqlmodel import col

from ..notices import Notice
from ..schema import ForumTopic, OutboxMessage, OutboxStatus, User
from .base import Repository, Transaction, checked

# The outbox method of a notice: not a Bot API method, the bot words it (see notices.py).
NOTICE_METHOD = "notice"
# The longest last_error kept.
LAST_ERROR_MAX = 1024


@dataclass(frozen=True)
class Claimed:
    """A message claimed for delivery; `attempts` counts this one."""

    id: int
    chat_id: int
    user_id: int | None
    method: str
    payload: dict[str, Any]
    attempts: int


class OutboxRepository(Repository):
    def __init__(self, transaction: Transaction) -> None:
        super().__init__(transaction)
        # Messages queued in this transaction: the bot wakes its delivery loop after commit.
        self.queued = 0

    async def enqueue(
        self,
        chat_id: int,
        text: str,
        *,
        user_id: int | None = None,
        dedup_key: str | None = None,
        delay: timedelta | None = None,
        extra: dict[str, Any] | None = None,
    ) -> int | None:
        """Queues a message in the caller's transaction, so it is sent only if the change that
        caused it commits. Returns the outbox id, or None when `dedup_key` was queued before."""
        payload = {"chat_id": chat_id, "text": text, **(extra or {})}
        return await self.enqueue_call(
            chat_id, "sendMessage", payload, user_id=user_id, dedup_key=dedup_key, delay=delay
        )

    async def tell(
        self, user: User, notice: Notice, values: dict[str, Any], dedup_key: str | None = None
    ) -> int | None:
        """Queues a notice for the user, worded in their language when it is sent. None for
        an erased user (nobody to tell) or a `dedup_key` queued before."""
        if user.deleted_at is not None:
            return None
        payload = {
            "chat_id": user.telegram_id,
            "notice": notice.value,
            "language": user.language_code,
            "values": values,
        }
        return await self.enqueue_call(
            user.telegram_id, NOTICE_METHOD, payload, user_id=user.id, dedup_key=dedup_key
        )

    async def post(self, topic: ForumTopic, notice: Notice, values: dict[str, Any]) -> int | None:
        """Queues a notice in a user's support topic, worded in the staff group's language
        (the bot's default)."""
        payload = {
            "chat_id": topic.chat_id,
            "message_thread_id": topic.message_thread_id,
            "notice": notice.value,
            "language": None,
            "values": values,
        }
        return await self.enqueue_call(topic.chat_id, NOTICE_METHOD, payload)

    async def enqueue_call(
        self,
        chat_id: int,
        method: str,
        payload: dict[str, Any],
        *,
        user_id: int | None = None,
        dedup_key: str | None = None,
        delay: timedelta | None = None,
    ) -> int | None:
        """Queues any Bot API call (`payload` is its parameters), not before `delay` from now."""
        message = checked(
            OutboxMessage,
            chat_id=chat_id,
            user_id=user_id,
            method=method,
            payload=payload,
            dedup_key=dedup_key,
        )
        columns = {"chat_id", "user_id", "method", "payload", "dedup_key"}
        values = message.model_dump(include=columns)
        if delay is not None:
            values["available_at"] = sa.func.now() + delay
        statement = (
            insert(OutboxMessage)
            .values(values)
            .on_conflict_do_nothing(index_elements=[col(OutboxMessage.dedup_key)])
            .returning(col(OutboxMessage.id))
        )
        outbox_id = (await self.session.execute(statement)).scalar_one_or_none()
        if outbox_id is None:
            return None
        self.queued += 1
        return int(outbox_id)

    async def withdraw(self, dedup_key: str) -> bool:
        """Takes back a message not sent yet (a reminder of a cancelled booking); False when
        it was sent already or never queued."""
        withdrawn = await self.session.execute(
            sa.update(OutboxMessage)
            .where(
                col(OutboxMessage.dedup_key) == dedup_key,
                col(OutboxMessage.status) == OutboxStatus.PENDING,
            )
            .values(status=OutboxStatus.WITHDRAWN, last_error="withdrawn")
            .returning(col(OutboxMessage.id))
            .execution_options(synchronize_session=False)
        )
        return withdrawn.scalar_one_or_none() is not None

    async def backlog(self) -> tuple[int, float]:
        """How many messages are due, and how long (seconds) the oldest due one has waited.
        Only due messages count: a reminder queued for tomorrow, or a message Telegram asked
        us to hold for retry_after, is not late."""
        oldest = sa.func.now() - sa.func.min(col(OutboxMessage.available_at))
        query = sa.select(
            sa.func.count(), sa.func.coalesce(sa.func.extract("epoch", oldest), 0)
        ).where(
            col(OutboxMessage.status) == OutboxStatus.PENDING,
            col(OutboxMessage.available_at) <= sa.func.now(),
        )
        depth, age = (await self.session.execute(query)).one()
        return int(depth), float(age)

    async def claim(self, batch_size: int, lease: timedelta) -> list[Claimed]:
        """Claims up to `batch_size` due messages, oldest first: each becomes invisible to
        the next claim for `lease` (then it is due again: delivery is at least once), and
        counts an attempt. Two bot processes never claim the same row. A message waiting to
        be retried holds its chat's later ones back, so that a chat's messages arrive in the
        order they were queued (a reminder scheduled for later, never attempted, holds
        nothing)."""
        earlier = aliased(OutboxMessage)
        behind_a_retry = sa.exists().where(
            col(earlier.chat_id) == col(OutboxMessage.chat_id),
            col(earlier.id) < col(OutboxMessage.id),
            col(earlier.status) == OutboxStatus.PENDING,
            col(earlier.attempts) > 0,
            col(earlier.available_at) > sa.func.now(),
        )
        due = (
            sa.select(col(OutboxMessage.id))
            .where(
                col(OutboxMessage.status) == OutboxStatus.PENDING,
                col(OutboxMessage.available_at) <= sa.func.now(),
                ~behind_a_retry,
            )
            .order_by(col(OutboxMessage.available_at), col(OutboxMessage.id))
            .limit(batch_size)
            .with_for_update(skip_locked=True)
        )
        claim = (
            sa.update(OutboxMessage)
            .where(col(OutboxMessage.id).in_(due))
            .values(
                available_at=sa.func.now() + lease,
                attempts=col(OutboxMessage.attempts) + 1,
            )
            .returning(
                col(OutboxMessage.id),
                col(OutboxMessage.chat_id),
                col(OutboxMessage.user_id),
                col(OutboxMessage.method),
                col(OutboxMessage.payload),
                col(OutboxMessage.attempts),
            )
            .execution_options(synchronize_session=False)
        )
        rows = (await self.session.execute(claim)).all()
        return [Claimed(*row) for row in rows]

    async def _mark(self, outbox_id: int, **values: Any) -> None:
        await self.session.execute(
            sa.update(OutboxMessage)
            .where(col(OutboxMessage.id) == outbox_id)
            .values(**values)
            .execution_options(synchronize_session=False)
        )

    async def sent(self, outbox_id: int) -> None:
        await self._mark(
            outbox_id, status=OutboxStatus.SENT, sent_at=sa.func.now(), last_error=None
        )

    async def retry(self, outbox_id: int, after: timedelta, error: str) -> None:
        """Due again `after` from now."""
        await self._mark(
            outbox_id, available_at=sa.func.now() + after, last_error=error[:LAST_ERROR_MAX]
        )

    async def put_back(self, outbox_ids: list[int], after: timedelta) -> None:
        """Claimed rows not attempted (behind a retried one in their chat): due again `after`
        from now, their claim's attempt not counted."""
        await self.session.execute(
            sa.update(OutboxMessage)
            .where(col(OutboxMessage.id).in_(outbox_ids))
            .values(available_at=sa.func.now() + after, attempts=col(OutboxMessage.attempts) - 1)
            .execution_options(synchronize_session=False)
        )

    async def give_up(self, outbox_id: int, error: str) -> None:
        await self._mark(outbox_id, status=OutboxStatus.FAILED, last_error=error[:LAST_ERROR_MAX])
