"""The backup runs the backup service records, newest first."""

from __future__ import annotations

from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Query
from sqlmodel import col

from services.core.schema import BackupKind, BackupRun, BackupStatus

from ..problems import problem_responses
from ..schemas import BackupRunOut
from .deps import DatabaseDep, Viewer

router = APIRouter(prefix="/backups", tags=["backups"])


@router.get("", response_model=list[BackupRunOut], responses=problem_responses(422))
async def list_backups(
    database: DatabaseDep,
    _: Viewer,
    kind: BackupKind | None = None,
    status: BackupStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[BackupRun]:
    query = sa.select(BackupRun)
    if kind is not None:
        query = query.where(col(BackupRun.kind) == kind)
    if status is not None:
        query = query.where(col(BackupRun.status) == status)
    query = query.order_by(col(BackupRun.started_at).desc(), col(BackupRun.id).desc())
    async with database.unit_of_work() as uow:
        return list((await uow.session.execute(query.limit(limit))).scalars())
