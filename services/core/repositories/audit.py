"""The audit log: who changed what, written by the admin API and by staff acting from the
Telegram staff group alike."""

from typing import Any

from ..schema import AuditEntry
from .base import Repository


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
