"""The audit log: one entry per change, added to the change's own transaction, with the
caller of the request as the actor."""

from __future__ import annotations

from typing import Any

from services.core.db import UnitOfWork

from .auth import Principal


def record(
    uow: UnitOfWork,
    who: Principal,
    action: str,
    entity: str,
    entity_id: object,
    summary: dict[str, Any],
) -> None:
    uow.audit.record(who.staff_id, who.name, action, entity, entity_id, summary)
