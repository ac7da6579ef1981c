"""The audit log: read and filter (it is written only by the changes themselves)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Query
from sqlmodel import col

from services.core.schema import AuditEntry

from ..pagination import CURSOR_PATTERN, fetch_page, newest_first
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
    query = newest_first(query, AuditEntry, cursor, limit)
    return await fetch_page(database, query, AuditOut, limit)
