"""The outbox: Bot API calls other services want made, delivered later by the bot."""

from typing import Any

from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col

from ..schema import OutboxMessage
from .base import Repository, checked


class OutboxRepository(Repository):
    async def enqueue(
        self,
        chat_id: int,
        text: str,
        *,
        user_id: int | None = None,
        dedup_key: str | None = None,
        method: str = "sendMessage",
        extra: dict[str, Any] | None = None,
    ) -> int | None:
        """Queues a message in the caller's transaction, so it is sent only if the change that
        caused it commits. Returns the outbox id, or None when `dedup_key` was queued before."""
        message = checked(
            OutboxMessage,
            chat_id=chat_id,
            user_id=user_id,
            method=method,
            payload={"chat_id": chat_id, "text": text, **(extra or {})},
            dedup_key=dedup_key,
        )
        statement = (
            insert(OutboxMessage)
            .values(
                message.model_dump(include={"chat_id", "user_id", "method", "payload", "dedup_key"})
            )
            .on_conflict_do_nothing(index_elements=[col(OutboxMessage.dedup_key)])
            .returning(col(OutboxMessage.id))
        )
        outbox_id = (await self.session.execute(statement)).scalar_one_or_none()
        return None if outbox_id is None else int(outbox_id)
