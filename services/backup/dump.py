"""Optional logical dumps: pg_dump in custom format as the backup role (pg_read_all_data), for
restoring single tables or moving to another major version; not a substitute for PITR."""

from __future__ import annotations

import logging
import re
import time
from datetime import UTC, datetime
from pathlib import Path

from services.core.os_user import ServiceUser
from services.core.schema import BackupKind

from .basebackup import prepare_directory
from .commands import run
from .errors import BackupError
from .live import LiveServer
from .runs import RunLog
from .settings import BackupServiceSettings

log = logging.getLogger("services.backup")

# pg_dump --verbose names each table as it copies its rows; the rest of its output (about 70
# lines on this schema) is chatter an operator does not need.
DUMPING_TABLE = re.compile(r'dumping contents of table "(?P<table>[^"]+)"')


class _Progress:
    """One line per table copied, numbered against the tables there are."""

    def __init__(self, tables: int) -> None:
        self.tables = tables
        self.done = 0

    def __call__(self, line: str) -> None:
        found = DUMPING_TABLE.search(line)
        if found is None:
            return
        self.done += 1
        log.info("  table %d/%d: %s", self.done, self.tables, found["table"])


async def take_dump(
    settings: BackupServiceSettings, live: LiveServer, runs: RunLog, user: ServiceUser
) -> Path:
    started = datetime.now(UTC)
    directory = prepare_directory(settings.backup_dir / "dumps", user)
    label = started.strftime(f"{settings.pg_database}-%Y%m%dT%H%M%SZ.dump")
    target = directory / label
    run_id = await runs.start(BackupKind.DUMP, label)
    clock = time.monotonic()
    tables = await live.user_tables()
    log.info("pg_dump of %s (%d tables) into %s ...", settings.pg_database, tables, target)
    try:
        await run(
            [
                settings.pg_bindir / "pg_dump",
                "--format=custom",
                "--no-password",
                "--verbose",
                f"--file={target}",
                settings.pg_database,
            ],
            what="pg_dump",
            user=user,
            env=live.libpq_env(),
            on_line=_Progress(tables),
        )
    except BackupError as error:
        target.unlink(missing_ok=True)
        await runs.finish(run_id, succeeded=False, details={}, error=str(error))
        raise
    size = target.stat().st_size
    duration = round(time.monotonic() - clock, 3)
    log.info("dump %s: %.1f MB in %.1f s", target, size / 1e6, duration)
    await runs.finish(
        run_id, succeeded=True, size_bytes=size, details={"duration_seconds": duration}
    )
    return target
