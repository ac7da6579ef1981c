"""The disaster drill: the VPS is gone. Restore from the offsite repository alone (a
pgBackRest configuration that knows no local archive, backups or data directory) into an empty
scratch directory, to the latest point, start it, run the drill's checks (schema revision,
amcheck, row counts) and compare the row counts with the live server at the moment of the
simulated loss. Reports:

- RPO: the live server's newest commit at the moment of the loss (track_commit_timestamp)
  against the newest commit replayed from the offsite WAL, in seconds;
- RTO: seconds from an empty directory to a server that accepts connections, promoted.

The loss is simulated right after the live server's current WAL is archived and shipped: what
the offsite copy holds then is what an operator would have."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.core.os_user import ServiceUser
from services.core.schema import BackupKind, metadata

from .catalogue import write_atomically
from .drill import _check, load_result
from .errors import BackupError
from .live import LiveServer
from .offsite import Offsite
from .restore import discard
from .runs import RunLog
from .scratch import ScratchServer
from .settings import BackupServiceSettings

log = logging.getLogger("services.backup")
# The newest commit replayed from the offsite WAL; not pg_last_committed_xact(), which would
# count the restored server's own commits after promotion (the checks create amcheck).
NEWEST_REPLAYED = "SELECT extract(epoch FROM pg_last_xact_replay_timestamp())"


@dataclass(frozen=True)
class DisasterDrillResult:
    succeeded: bool
    started_at: datetime
    duration_seconds: float
    backup: str | None = None
    rpo_seconds: float | None = None
    rto_seconds: float | None = None
    error: str | None = None
    revision: str | None = None
    indexes_checked: int = 0
    row_counts: dict[str, int] = field(default_factory=dict)
    live_row_counts: dict[str, int] = field(default_factory=dict)
    # False when the live server committed while the drill took its snapshot: the counts
    # are then compared for the record only.
    counts_enforced: bool = True

    def details(self) -> dict[str, Any]:
        data = asdict(self)
        data["started_at"] = self.started_at.isoformat()
        return data


def last_disaster_drill_path(settings: BackupServiceSettings) -> Path:
    return settings.backup_dir / "last-disaster-drill.json"


def load_last_disaster_drill(settings: BackupServiceSettings) -> DisasterDrillResult | None:
    return load_result(last_disaster_drill_path(settings), DisasterDrillResult)


async def _live_snapshot(live: LiveServer) -> tuple[datetime | None, dict[str, int]]:
    """The live server's newest commit time and the row count of every table."""
    tables = [table.name for table in metadata.sorted_tables]
    async with live.connect() as connection:
        return await connection.snapshot(tables)


async def disaster_drill(
    settings: BackupServiceSettings, live: LiveServer, runs: RunLog, user: ServiceUser
) -> DisasterDrillResult:
    started = datetime.now(UTC)
    clock = time.monotonic()
    run_id = await runs.start(BackupKind.DISASTER_DRILL, "offsite")
    scratch = settings.backup_dir / "disaster-drills" / started.strftime("dr-%Y%m%dT%H%M%SZ")
    label: str | None = None
    live_counts: dict[str, int] = {}
    try:
        offsite = Offsite(settings, user)
        newest_before, live_counts = await _live_snapshot(live)
        # Everything committed so far: archived locally, then shipped offsite.
        await live.switch_wal_and_wait()
        await offsite.ship()
        async with live.connect() as connection:
            lost_at_commit = await connection.newest_commit()
        enforced = lost_at_commit == newest_before
        label = await offsite.newest_label()
        # From here on only the offsite repository is used: the VPS is gone.
        log.info("disaster drill: restoring %s from the offsite repository into %s", label, scratch)
        discard(scratch)
        restore_clock = time.monotonic()
        data_dir = scratch / "data"
        await offsite.restore(data_dir)
        server = ScratchServer(settings, data_dir, user, keep_wal=False)
        await server.start()
        try:
            await server.wait_promoted()
            rto = time.monotonic() - restore_clock
            restored_newest = (await server.query(NEWEST_REPLAYED)).strip()
            checks = await _check(server)
        finally:
            await server.stop()
        rpo = _rpo(lost_at_commit, restored_newest)
        restored_counts: dict[str, int] = checks["row_counts"]
        if enforced:
            differ = {
                name: (restored_counts.get(name), count)
                for name, count in live_counts.items()
                if restored_counts.get(name) != count
            }
            if differ:
                raise BackupError(
                    "restored row counts differ from the live server's at the loss "
                    f"(table: (restored, live)): {differ}"
                )
        result = DisasterDrillResult(
            succeeded=True,
            started_at=started,
            duration_seconds=round(time.monotonic() - clock, 3),
            backup=label,
            rpo_seconds=round(rpo, 3),
            rto_seconds=round(rto, 3),
            live_row_counts=live_counts,
            counts_enforced=enforced,
            **checks,
        )
    except BackupError as error:
        result = DisasterDrillResult(
            succeeded=False,
            started_at=started,
            duration_seconds=round(time.monotonic() - clock, 3),
            backup=label,
            error=str(error),
            live_row_counts=live_counts,
        )
    finally:
        discard(scratch)
    write_atomically(
        last_disaster_drill_path(settings), json.dumps(result.details(), indent=2) + "\n"
    )
    await runs.finish(
        run_id, succeeded=result.succeeded, details=result.details(), error=result.error
    )
    if result.succeeded:
        log.info(
            "disaster drill of %s passed: RPO %.1f s, RTO %.1f s, rows %s",
            label,
            result.rpo_seconds,
            result.rto_seconds,
            result.row_counts,
        )
    else:
        log.error("disaster drill FAILED: %s", result.error)
    return result


def _rpo(live_newest: datetime | None, restored_newest: str) -> float:
    """Seconds of commits the offsite copy lacked; 0 when the newest live commit is restored."""
    if live_newest is None:
        raise BackupError(
            "the live server reports no commit time (track_commit_timestamp needs a restart of "
            "PostgreSQL to take effect): RPO unknown"
        )
    if not restored_newest:
        raise BackupError("the restored server replayed no transaction: RPO unknown")
    return max(0.0, live_newest.timestamp() - float(restored_newest))
