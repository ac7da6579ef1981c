"""The audit log: who changed what, written by the admin API and by staff acting from the
Telegram staff group alike."""

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import col

from ..schema import AuditEntry
from .base import Repository
from .pages import Key, Slice, page


class AuditRepository(Repository):
    def record(
        self,
        staff_id: int | None,
        actor: str,
        action: str,
        entity: str,
        entity_id: object,
        summary: dict[str, Any],
    ) -> None:
        """Adds the entry to the unit of work: it commits with the change or not at all.
        `summary` holds what changed (ids, flags, amounts), never a user's personal text."""
        self.session.add(
            AuditEntry(
                staff_id=staff_id,
                actor=actor,
                action=action,
                entity=entity,
                entity_id=None if entity_id is None else str(entity_id),
                summary=summary,
            )
        )

    async def search(
        self,
        *,
        staff_id: int | None = None,
        action: str | None = None,
        entity: str | None = None,
        entity_id: str | None = None,
        created_from: datetime | None = None,
        created_to: datetime | None = None,
        after: Key | None,
        limit: int,
    ) -> Slice[AuditEntry]:
        """A page of entries newest first; each filter given narrows it."""
        query = sa.select(AuditEntry)
        for column, value in (
            (AuditEntry.staff_id, staff_id),
            (AuditEntry.action, action),
            (AuditEntry.entity, entity),
            (AuditEntry.entity_id, entity_id),
        ):
            if value is not None:
                query = query.where(col(column) == value)
        if created_from is not None:
            query = query.where(col(AuditEntry.created_at) >= created_from)
        if created_to is not None:
            query = query.where(col(AuditEntry.created_at) < created_to)
        return await page(self.session, query, AuditEntry, after, limit)

    async def about(self, entity: str, entity_id: object) -> list[AuditEntry]:
        """Every entry about one row, oldest first."""
        result = await self.session.execute(
            sa.select(AuditEntry)
            .where(col(AuditEntry.entity) == entity, col(AuditEntry.entity_id) == str(entity_id))
            .order_by(col(AuditEntry.id))
        )
        return list(result.scalars())
