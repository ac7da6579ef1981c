"""A row per run in the shared schema's backup_runs table, written through the core's unit of
work as the services' role (via PgBouncer, like every other service's rows). The backup role
stays what it is: REPLICATION plus reads. The on-disk catalogue is the record a restore trusts,
so a failure to write a row is logged and never fails the backup itself."""

from __future__ import annotations

import logging
from typing import Any

from services.core.db import Database
from services.core.errors import CoreError
from services.core.schema import BackupKind

log = logging.getLogger("services.backup")


class RunLog:
    def __init__(self, database: Database) -> None:
        self.database = database

    async def start(self, kind: BackupKind, label: str) -> int | None:
        try:
            async with self.database.unit_of_work() as uow:
                return await uow.backups.start(kind, label)
        except CoreError as error:
            log.warning("could not record the start of the %s run in backup_runs: %s", kind, error)
            return None

    async def finish(
        self,
        run_id: int | None,
        *,
        succeeded: bool,
        details: dict[str, Any],
        size_bytes: int | None = None,
        error: str | None = None,
    ) -> None:
        if run_id is None:
            return
        try:
            async with self.database.unit_of_work() as uow:
                await uow.backups.finish(
                    run_id, succeeded=succeeded, details=details, size_bytes=size_bytes, error=error
                )
        except CoreError as failure:
            log.warning("could not record the end of run %s in backup_runs: %s", run_id, failure)
