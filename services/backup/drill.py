"""Restore drills: prove the newest backup restores. Verify it, restore it plus all archived WAL
into a scratch PostgreSQL (archiving off), check the schema's Alembic revision, amcheck every
B-tree index, count the rows of every table; record the verdict and how long it took."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from alembic.config import Config
from alembic.script import ScriptDirectory

from services.core.os_user import ServiceUser
from services.core.schema import BackupKind, metadata

from .catalogue import Catalogue, write_atomically
from .errors import BackupError
from .live import LiveServer
from .restore import discard, recover
from .runs import RunLog
from .scratch import ScratchServer
from .settings import BackupServiceSettings

log = logging.getLogger("services.backup")
ALEMBIC_INI = Path(__file__).resolve().parents[2] / "alembic.ini"

# Every B-tree index, catalogs included, with heapallindexed: each heap tuple must be indexed.
AMCHECK = """
SELECT count(bt_index_check(c.oid, true))
  FROM pg_index i
  JOIN pg_class c ON c.oid = i.indexrelid
  JOIN pg_am am ON am.oid = c.relam
 WHERE am.amname = 'btree' AND c.relpersistence <> 't' AND i.indisready AND i.indisvalid
"""


@dataclass(frozen=True)
class DrillResult:
    succeeded: bool
    started_at: datetime
    duration_seconds: float
    backup: str | None
    error: str | None = None
    revision: str | None = None
    indexes_checked: int = 0
    row_counts: dict[str, int] = field(default_factory=dict)

    def details(self) -> dict[str, Any]:
        data = asdict(self)
        data["started_at"] = self.started_at.isoformat()
        return data


R = TypeVar("R")


def expected_revision() -> str | None:
    return ScriptDirectory.from_config(Config(str(ALEMBIC_INI))).get_current_head()


def last_drill_path(settings: BackupServiceSettings) -> Path:
    return settings.backup_dir / "last-drill.json"


def load_result(path: Path, result: type[R]) -> R | None:
    """A drill's recorded result (its details()), None when there is none yet; keys the
    result no longer has (an older record) are left out."""
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    data["started_at"] = datetime.fromisoformat(data["started_at"])
    known = result.__dataclass_fields__  # type: ignore[attr-defined]
    return result(**{key: value for key, value in data.items() if key in known})


def load_last_drill(settings: BackupServiceSettings) -> DrillResult | None:
    return load_result(last_drill_path(settings), DrillResult)


async def drill(
    settings: BackupServiceSettings, live: LiveServer, runs: RunLog, user: ServiceUser
) -> DrillResult:
    started = datetime.now(UTC)
    clock = time.monotonic()
    newest = Catalogue(settings.backup_dir).newest(verified_only=False)
    label = newest.label if newest else None
    run_id = await runs.start(BackupKind.DRILL, label or "")
    scratch = settings.backup_dir / "drills" / started.strftime("drill-%Y%m%dT%H%M%SZ")
    try:
        if newest is None:
            raise BackupError(f"no base backup to drill in {settings.backup_dir}")
        log.info("restore drill of %s in %s ...", newest.label, scratch)
        restored = await recover(
            settings, live, user, target_time=None, into=scratch, keep_wal=False, backup=newest
        )
        try:
            checks = await _check(restored.server)
        finally:
            await restored.server.stop()
        result = DrillResult(
            succeeded=True,
            started_at=started,
            duration_seconds=round(time.monotonic() - clock, 3),
            backup=label,
            **checks,
        )
    except BackupError as error:
        result = DrillResult(
            succeeded=False,
            started_at=started,
            duration_seconds=round(time.monotonic() - clock, 3),
            backup=label,
            error=str(error),
        )
    finally:
        discard(scratch)
    write_atomically(last_drill_path(settings), json.dumps(result.details(), indent=2) + "\n")
    await runs.finish(
        run_id, succeeded=result.succeeded, details=result.details(), error=result.error
    )
    if result.succeeded:
        log.info(
            "drill of %s passed in %.1f s: revision %s, %d indexes checked, rows %s",
            label,
            result.duration_seconds,
            result.revision,
            result.indexes_checked,
            result.row_counts,
        )
    else:
        log.error("drill of %s FAILED (%.1f s): %s", label, result.duration_seconds, result.error)
    return result


async def _check(server: ScratchServer) -> dict[str, Any]:
    database = server.settings.pg_database
    expected = expected_revision()
    revision = (await server.query("SELECT version_num FROM alembic_version", database)).strip()
    if revision != expected:
        raise BackupError(f"restored schema is at revision {revision!r}, expected {expected!r}")
    await server.query("CREATE EXTENSION IF NOT EXISTS amcheck", database)
    try:
        indexes = int((await server.query(AMCHECK, database)).strip())
    except BackupError as error:
        raise BackupError(f"amcheck found a damaged index: {error}") from None
    tables = [table.name for table in metadata.sorted_tables]
    counts_sql = " UNION ALL ".join(f"SELECT '{name}', count(*) FROM {name}" for name in tables)
    rows = (await server.query(counts_sql, database)).splitlines()
    counts = {name: int(count) for name, count in (row.split("|") for row in rows)}
    return {"revision": revision, "indexes_checked": indexes, "row_counts": counts}
