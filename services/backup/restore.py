"""Point-in-time restore: the newest verified base backup from before the target, copied into a
new data directory, replayed from the WAL archive along the live cluster's timeline up to the
target (or the archive's end), then promoted onto a new timeline.

A restore never writes into the WAL archive: its new timeline would be a branch that later
restores to "latest" follow, away from the live server's commits. Its WAL waits in its own
pg_wal, marked ready, and is archived once the operator switches over and starts it as the
live server."""

from __future__ import annotations

import logging
import shlex
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from services.core.os_user import ServiceUser
from services.core.schema import BackupKind

from . import archive
from .basebackup import verify_backup
from .catalogue import BaseBackup, Catalogue, Verification
from .commands import run
from .errors import BackupError
from .live import LiveServer, ServerUnreachable
from .runs import RunLog
from .scratch import ScratchServer
from .settings import BackupServiceSettings

log = logging.getLogger("services.backup")
RESTORE_SCRIPT = Path(__file__).resolve().parent / "restore-wal.sh"
LATEST = "latest"


@dataclass(frozen=True)
class Restored:
    backup: BaseBackup
    data_dir: Path
    followed_timeline: str  # the timeline recovery followed: a number, or "latest"
    newer_timelines: list[int]  # branches in the archive newer than the one followed
    server: ScratchServer


async def follow_timeline(
    settings: BackupServiceSettings, live: LiveServer, catalogue: Catalogue, requested: str | None
) -> str:
    """The timeline to recover along: the operator's choice; else the live server's, after it
    archived its current segment (so that the end of the archive holds every commit so far);
    else, with the live server lost, the one it archived on last, as the archive records it.
    A reachable server must be the cluster the catalogue holds backups of."""
    try:
        catalogue.check_cluster(await live.system_identifier())
        current = await live.switch_wal_and_wait()
        return requested or str(current)
    except ServerUnreachable as error:
        if requested:
            log.warning("%s: restoring what the archive holds", error)
            return requested
        recorded = archive.live_timeline(settings.archive_dir)
        newest = catalogue.newest()
        if recorded is None and newest is None:
            log.warning("%s: restoring along the archive's latest timeline", error)
            return LATEST
        timeline = max(recorded or 0, newest.timeline if newest else 0)
        log.warning(
            "%s: restoring what the archive holds, along timeline %d, the one the live "
            "server archived on last",
            error,
            timeline,
        )
        return str(timeline)


def newer_branches(settings: BackupServiceSettings, timeline: str) -> list[int]:
    """Timelines in the archive that branched after the followed one. Said loudly: a restore
    along the wrong branch silently ends where that branch left the live server."""
    if timeline == LATEST:
        return []
    newer = [t for t in archive.branched_timelines(settings.archive_dir) if t > int(timeline)]
    if newer:
        log.warning(
            "WARNING: the WAL archive holds timeline(s) %s, newer than timeline %s that this "
            "restore follows (a restore switched over to, or an older version's test "
            "restore). Following %s; to follow another, pass --timeline N.",
            ", ".join(map(str, newer)),
            timeline,
            timeline,
        )
    return newer


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
    keep_wal: bool,
    backup: BaseBackup | None = None,
    timeline: str | None = None,
) -> Restored:
    """Restore into the new directory `into` (it holds pgdata/, the socket and the log) and
    leave the promoted server running; the caller checks and stops it. keep_wal: keep the new
    timeline's WAL for the archive (a restore), or not at all (a drill)."""
    if into.exists():  # noqa: ASYNC240 (one stat, before anything changes)
        raise BackupError(f"{into} already exists; a restore only writes to a new directory")
    catalogue = Catalogue(settings.backup_dir)
    followed = await follow_timeline(settings, live, catalogue, timeline)
    newer = newer_branches(settings, followed)
    chosen = backup or choose_backup(catalogue, target_time, followed)
    await verify_backup(settings, catalogue, chosen.label, user)
    data_dir = _new_data_directory(into, user)
    log.info("copying base backup %s into %s ...", chosen.label, data_dir)
    await run(["cp", "-a", f"{catalogue.path(chosen.label)}/.", data_dir], what="copy", user=user)
    _write_recovery_settings(settings, data_dir, target_time, followed, user)
    server = ScratchServer(settings, data_dir, user, keep_wal=keep_wal)
    target = target_time.isoformat() if target_time else "the end of the archived WAL"
    log.info("recovering to %s along timeline %s ...", target, followed)
    await server.start()
    try:
        await server.wait_promoted()
    except BackupError:
        await server.stop()
        raise
    return Restored(chosen, data_dir, followed, newer, server)


def _new_data_directory(into: Path, user: ServiceUser) -> Path:
    """into/pgdata; into and any missing parent are created and given to the user that runs
    PostgreSQL. Directories that already exist keep their owner."""
    missing = [into, *(parent for parent in into.parents if not parent.exists())]
    for directory in reversed(missing):
        directory.mkdir(mode=0o750)
        user.own(directory)
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
    script = shlex.quote(str(RESTORE_SCRIPT))
    restore_command = f"sh {script} %f %p {shlex.quote(str(settings.archive_dir))}"
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
    newer_timelines: list[int]
    last_transaction_at: str | None  # of the last transaction replayed
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
    timeline: str | None = None,
) -> RestoreReport:
    """The operators' restore: recover, promote, drop the recovery target so that the new
    directory starts as a normal primary, and stop. The live server is left alone."""
    clock = time.monotonic()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    # Absolute: PostgreSQL's programs run from / (the service user may not enter our cwd).
    into = (into or settings.backup_dir / "restores" / f"restore-{stamp}").resolve()
    run_id = await runs.start(BackupKind.RESTORE, into.name)
    try:
        restored = await recover(
            settings,
            live,
            user,
            target_time=target_time,
            into=into,
            keep_wal=True,
            timeline=timeline,
        )
        server = restored.server
        try:
            last_transaction = await server.query("SELECT pg_last_xact_replay_timestamp()")
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
        newer_timelines=restored.newer_timelines,
        last_transaction_at=last_transaction.strip() or None,
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
            "newer_timelines": report.newer_timelines,
            "last_transaction_at": report.last_transaction_at,
            "new_timeline": report.new_timeline,
            "duration_seconds": report.duration_seconds,
        },
    )
    return report


def discard(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)
