"""The offsite repository's jobs as the scheduler and the CLI run them: a backup (full, or
differential between fulls) verified and followed by expire, recorded in backup_runs; what is
due when."""

from __future__ import annotations

import logging
import time

from services.core.schema import BackupKind

from .errors import BackupError
from .offsite import BackupType, Offsite, OffsiteState
from .runs import RunLog

log = logging.getLogger("services.backup")


async def offsite_backup(offsite: Offsite, runs: RunLog, kind: BackupType) -> str:
    run_id = await runs.start(BackupKind.OFFSITE, kind)
    started = time.monotonic()
    try:
        label = await offsite.backup(kind)
        await offsite.verify()
        await offsite.expire()
    except BackupError as error:
        await runs.finish(run_id, succeeded=False, details={"type": kind}, error=str(error))
        raise
    await runs.finish(
        run_id,
        succeeded=True,
        details={
            "type": kind,
            "label": label,
            "verified": True,
            "duration_seconds": round(time.monotonic() - started, 3),
        },
    )
    return label


def due_backup(
    state: OffsiteState, now: float, full_interval: float, diff_interval: float
) -> BackupType | None:
    """Which offsite backup is due: a full one when none was taken or the last full one is
    FULL_INTERVAL old, else a differential one when the last backup is DIFF_INTERVAL old."""
    if state.last_full_at is None or state.last_full_at + full_interval <= now:
        return "full"
    if state.last_backup_at is None or state.last_backup_at + diff_interval <= now:
        return "diff"
    return None
