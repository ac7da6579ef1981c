"""The backup service's record of its runs (backup_runs), and the admin API's reading of it.
The on-disk catalogue is what a restore trusts; these rows are for people and alerts."""

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import col

from ..schema import BackupKind, BackupRun, BackupStatus
from .base import Repository

ERROR_MAX = 2048


class BackupRunRepository(Repository):
    async def start(self, kind: BackupKind, label: str) -> int:
        """Records a run that began now; its id."""
        statement = (
            sa.insert(BackupRun)
            .values(kind=kind, status=BackupStatus.RUNNING, label=label, details={})
            .returning(col(BackupRun.id))
        )
        run_id: int | None = (await self.session.execute(statement)).scalar_one()
        assert run_id is not None  # RETURNING the new row's primary key
        return run_id

    async def finish(
        self,
        run_id: int,
        *,
        succeeded: bool,
        details: dict[str, Any],
        size_bytes: int | None = None,
        error: str | None = None,
    ) -> None:
        """Records how the run ended, now."""
        await self.session.execute(
            sa.update(BackupRun)
            .where(col(BackupRun.id) == run_id)
            .values(
                status=BackupStatus.SUCCEEDED if succeeded else BackupStatus.FAILED,
                finished_at=datetime.now(UTC),
                size_bytes=size_bytes,
                details=details,
                error=error[:ERROR_MAX] if error else None,
            )
        )

    async def recent(
        self, *, kind: BackupKind | None = None, status: BackupStatus | None = None, limit: int
    ) -> list[BackupRun]:
        """Runs newest first; each filter given narrows them."""
        query = sa.select(BackupRun)
        if kind is not None:
            query = query.where(col(BackupRun.kind) == kind)
        if status is not None:
            query = query.where(col(BackupRun.status) == status)
        query = query.order_by(col(BackupRun.started_at).desc(), col(BackupRun.id).desc())
        return list((await self.session.execute(query.limit(limit))).scalars())
