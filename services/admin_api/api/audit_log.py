"""The audit log: read and filter (it is written only by the changes themselves)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from ..pagination import CURSOR_PATTERN, after, to_page
from ..problems import problem_responses
from ..schemas import NO_NUL, AuditOut, Page
from .deps import DatabaseDep, IdFilter, Limit, Viewer

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("", response_model=Page[AuditOut], responses=problem_responses(422))
async def list_audit(
    database: DatabaseDep,
    _: Viewer,
    limit: Limit,
    staff_id: IdFilter = None,
    action: Annotated[str | None, Query(max_length=64, pattern=NO_NUL)] = None,
    entity: Annotated[str | None, Query(max_length=64, pattern=NO_NUL)] = None,
    entity_id: Annotated[str | None, Query(max_length=64, pattern=NO_NUL)] = None,
    created_from: Annotated[datetime | None, Query(description="At or after")] = None,
    created_to: Annotated[datetime | None, Query(description="Before")] = None,
    cursor: Annotated[
        str | None, Query(min_length=1, max_length=200, pattern=CURSOR_PATTERN)
    ] = None,
) -> Page[AuditOut]:
    """Entries newest first."""
    start = after(cursor)
    async with database.unit_of_work() as uow:
        found = await uow.audit.search(
            staff_id=staff_id,
            action=action,
            entity=entity,
            entity_id=entity_id,
            created_from=created_from,
            created_to=created_to,
            after=start,
            limit=limit,
        )
    return to_page(found, AuditOut)
