"""The audit log: one entry per change, added to the change's own transaction."""

from __future__ import annotations

from typing import Any

from services.core.db import UnitOfWork
from services.core.schema import AuditEntry

from .auth import Principal


def record(
    uow: UnitOfWork,
    who: Principal,
    action: str,
    entity: str,
    entity_id: object,
    summary: dict[str, Any],
) -> None:
    """Adds the entry to the unit of work: it commits with the change or not at all.
    `summary` holds what changed (ids, flags, amounts), never a user's personal text."""
    uow.session.add(
        AuditEntry(
            staff_id=who.staff_id,
            actor=who.name,
            action=action,
            entity=entity,
            entity_id=None if entity_id is None else str(entity_id),
            summary=summary,
        )
    )
