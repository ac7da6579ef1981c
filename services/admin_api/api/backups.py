"""The backup runs the backup service records, newest first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

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
    async with database.unit_of_work() as uow:
        return await uow.backups.recent(kind=kind, status=status, limit=limit)
