"""Point-in-time restore: the newest verified base backup from before the target, copied into a
new data directory, replayed from the WAL archive along the live server's timeline up to the
target (or the archive's end), then promoted onto a new timeline."""

from __future__ import annotations

import logging
import shlex
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from infra.system import ServiceUser
from services.core.schema import BackupKind

from .basebackup import prepare_directory, verify_backup
from .catalogue import BaseBackup, Catalogue, Verification
from .commands import run
from .errors import BackupError
from .live import LiveServer, ServerUnreachable
from .runs import RunLog
from .scratch import ScratchServer
from .settings import BackupServiceSettings

log = logging.getLogger("services.backup")
RESTORE_SCRIPT = Path(__file__).resolve().parents[2] / "infra" / "postgres" / "restore-wal.sh"
LATEST = "latest"


@dataclass(frozen=True)
class Restored:
    backup: BaseBackup
    data_dir: Path
    followed_timeline: str  # the timeline recovery followed: a number, or "latest"
    server: ScratchServer


async def follow_timeline(live: LiveServer, catalogue: Catalogue) -> str:
    """The live server's timeline after archiving its current segment, so that "latest" means
    every commit so far; "latest" (the archive's newest timeline) when it cannot be reached.
    A reachable server must be the cluster the catalogue holds backups of."""
    try:
        catalogue.check_cluster(await live.system_identifier())
        return str(await live.switch_wal_and_wait())
    except ServerUnreachable as error:
        log.warning("%s: restoring what the archive holds, along its latest timeline", error)
        return LATEST


def choose_backup(catalogue: Catalogue, target_time: datetime | None, timeline: str) -> BaseBackup:
    """The newest verified backup that was complete before the target, on the timeline."""
    candidates = [
        backup
        for backup in catalogue.backups()
        if backup.verification is Verification.VERIFIED
        and (target_time is None or backup.finished_at <= target_time)
        and (timeline == LATEST or backup.timeline <= int(timeline))
    ]
    if not candidates:
        when = f"finished before {target_time.isoformat()}" if target_time else "at all"
        raise BackupError(f"no verified base backup {when} in {catalogue.root}")
    return candidates[-1]


async def recover(
    settings: BackupServiceSettings,
    live: LiveServer,
    user: ServiceUser,
    *,
    target_time: datetime | None,
    into: Path,
    archive: bool,
    backup: BaseBackup | None = None,
) -> Restored:
    """Restore into the new directory `into` (it holds pgdata/, the socket and the log) and
    leave the promoted server running; the caller checks and stops it."""
    catalogue = Catalogue(settings.backup_dir)
    timeline = await follow_timeline(live, catalogue)
    chosen = backup or choose_backup(catalogue, target_time, timeline)
    await verify_backup(settings, catalogue, chosen.label, user)
    data_dir = _new_data_directory(into, user)
    log.info("copying base backup %s into %s ...", chosen.label, data_dir)
    await run(["cp", "-a", f"{catalogue.path(chosen.label)}/.", data_dir], what="copy", user=user)
    _write_recovery_settings(settings, data_dir, target_time, timeline, user)
    server = ScratchServer(settings, data_dir, user, archive=archive)
    target = target_time.isoformat() if target_time else "the end of the archived WAL"
    log.info("recovering to %s along timeline %s ...", target, timeline)
    await server.start()
    try:
        await server.wait_promoted()
    except BackupError:
        await server.stop()
        raise
    return Restored(chosen, data_dir, timeline, server)


def _new_data_directory(into: Path, user: ServiceUser) -> Path:
    if into.exists():
        raise BackupError(f"{into} already exists; a restore only writes to a new directory")
    prepare_directory(into, user)
    data_dir = into / "pgdata"
    data_dir.mkdir(mode=0o700)
    user.own(data_dir)
    return data_dir


def _write_recovery_settings(
    settings: BackupServiceSettings,
    data_dir: Path,
    target_time: datetime | None,
    timeline: str,
    user: ServiceUser,
) -> None:
    script, archive = shlex.quote(str(RESTORE_SCRIPT)), shlex.quote(str(settings.archive_dir))
    restore_command = f"sh {script} %f %p {archive}"
    lines = [
        f"# Recovery settings written by the backup service on {datetime.now(UTC).isoformat()}",
        f"restore_command = '{_conf(restore_command)}'",
        f"recovery_target_timeline = '{timeline}'",
        "recovery_target_action = 'promote'",
    ]
    if target_time is not None:
        lines.append(f"recovery_target_time = '{target_time.isoformat()}'")
    with (data_dir / "postgresql.auto.conf").open("a") as conf:
        conf.write("\n" + "\n".join(lines) + "\n")
    signal = data_dir / "recovery.signal"
    signal.touch(0o600)
    user.own(signal)


def _conf(value: str) -> str:
    return value.replace("'", "''")


@dataclass(frozen=True)
class RestoreReport:
    backup: str
    data_dir: Path
    target_time: datetime | None
    followed_timeline: str
    new_timeline: int
    duration_seconds: float
    log_file: Path


async def restore(
    settings: BackupServiceSettings,
    live: LiveServer,
    user: ServiceUser,
    runs: RunLog,
    *,
    target_time: datetime | None,
    into: Path | None = None,
) -> RestoreReport:
    """The operators' restore: recover, promote, drop the recovery target so that the new
    directory starts as a normal primary, and stop. The live server is left alone."""
    clock = time.monotonic()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    # Absolute: PostgreSQL's programs run from / (the service user may not enter our cwd).
    into = (into or settings.backup_dir / "restores" / f"restore-{stamp}").resolve()
    run_id = await runs.start(BackupKind.RESTORE, into.name)
    try:
        prepare_directory(into.parent, user)
        restored = await recover(
            settings, live, user, target_time=target_time, into=into, archive=True
        )
        server = restored.server
        try:
            for name in (
                "recovery_target_time",
                "recovery_target_timeline",
                "recovery_target_action",
            ):
                await server.query(f"ALTER SYSTEM RESET {name}")
            wal_file = await server.query("SELECT pg_walfile_name(pg_current_wal_lsn())")
        finally:
            await server.stop()
    except (BackupError, OSError) as error:
        await runs.finish(run_id, succeeded=False, details={}, error=str(error))
        raise
    report = RestoreReport(
        backup=restored.backup.label,
        data_dir=restored.data_dir,
        target_time=target_time,
        followed_timeline=restored.followed_timeline,
        new_timeline=int(wal_file.strip()[:8], 16),
        duration_seconds=round(time.monotonic() - clock, 3),
        log_file=server.log_file,
    )
    await runs.finish(
        run_id,
        succeeded=True,
        details={
            "backup": report.backup,
            "data_dir": str(report.data_dir),
            "target_time": target_time.isoformat() if target_time else None,
            "followed_timeline": report.followed_timeline,
            "new_timeline": report.new_timeline,
            "duration_seconds": report.duration_seconds,
        },
    )
    return report


def discard(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)
