"""Base backups: pg_basebackup (plain format, WAL streamed alongside, a SHA-256 manifest), checked
with pg_verifybackup straight away, then catalogued."""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from services.core.os_user import ServiceUser
from services.core.schema import BackupKind

from .catalogue import (
    BaseBackup,
    Catalogue,
    Verification,
    directory_size,
    new_label,
    read_backup_label,
)
from .commands import run
from .errors import BackupError
from .live import LiveServer
from .runs import RunLog
from .settings import BackupServiceSettings

log = logging.getLogger("services.backup")


def prepare_directory(path: Path, user: ServiceUser) -> Path:
    """path (and its parents), owned by the user that runs PostgreSQL's programs."""
    path.mkdir(parents=True, exist_ok=True, mode=0o750)
    user.own(path)
    return path


async def take_backup(
    settings: BackupServiceSettings, live: LiveServer, runs: RunLog, user: ServiceUser
) -> BaseBackup:
    started = datetime.now(UTC)
    label = new_label(started)
    catalogue = Catalogue(settings.backup_dir)
    system_identifier = await live.system_identifier()
    catalogue.check_cluster(system_identifier)
    prepare_directory(settings.backup_dir, user)
    prepare_directory(catalogue.root, user)
    # Written under a hidden name and renamed once verified: a crash leaves no half backup
    # where a restore would look.
    partial = catalogue.root / f".{label}.partial"
    run_id = await runs.start(BackupKind.BASE, label)
    clock = time.monotonic()
    log.info("base backup %s of %s into %s ...", label, live.address, catalogue.path(label))
    try:
        await run(
            [
                settings.pg_bindir / "pg_basebackup",
                f"--pgdata={partial}",
                "--format=plain",
                "--wal-method=stream",
                "--checkpoint=fast",
                "--manifest-checksums=SHA256",
                f"--label={label}",
                "--no-password",
                "--progress",
            ],
            what="pg_basebackup",
            user=user,
            env=live.libpq_env(),
        )
        verify_started = time.monotonic()
        await verify_directory(settings, partial, user)
        verify_seconds = time.monotonic() - verify_started
        partial.rename(catalogue.path(label))
        timeline, start_wal = read_backup_label(catalogue.path(label))
        backup = BaseBackup(
            label=label,
            system_identifier=system_identifier,
            started_at=started,
            finished_at=datetime.now(UTC),
            timeline=timeline,
            start_wal=start_wal,
            size_bytes=directory_size(catalogue.path(label)),
            duration_seconds=round(time.monotonic() - clock, 3),
            verify_seconds=round(verify_seconds, 3),
            verification=Verification.VERIFIED,
        )
        catalogue.save(backup)
    except (BackupError, OSError, ValueError) as error:
        shutil.rmtree(partial, ignore_errors=True)
        await runs.finish(run_id, succeeded=False, details={}, error=str(error))
        raise BackupError(f"base backup {label} failed: {error}") from None
    log.info(
        "base backup %s verified: %.1f MB in %.1f s (timeline %d, starts at WAL %s)",
        label,
        backup.size_bytes / 1e6,
        backup.duration_seconds,
        backup.timeline,
        backup.start_wal,
    )
    await runs.finish(
        run_id,
        succeeded=True,
        size_bytes=backup.size_bytes,
        details={
            "duration_seconds": backup.duration_seconds,
            "timeline": backup.timeline,
            "start_wal": backup.start_wal,
            "verification": backup.verification.value,
        },
    )
    return backup


async def verify_directory(settings: BackupServiceSettings, path: Path, user: ServiceUser) -> None:
    """pg_verifybackup: every file against the manifest's SHA-256, and the WAL it needs."""
    log.info("verifying %s with pg_verifybackup ...", path)
    await run(
        [settings.pg_bindir / "pg_verifybackup", "--quiet", path],
        what=f"pg_verifybackup of {path}",
        user=user,
    )


async def verify_backup(
    settings: BackupServiceSettings, catalogue: Catalogue, label: str, user: ServiceUser
) -> BaseBackup:
    """Verify a catalogued backup again and record the verdict in the catalogue; raise
    BackupError when it is corrupt."""
    backup = catalogue.get(label)
    try:
        await verify_directory(settings, catalogue.path(label), user)
    except BackupError as error:
        catalogue.save(replace(backup, verification=Verification.CORRUPT))
        raise BackupError(f"backup {label} is corrupt: {error}") from None
    verified = replace(backup, verification=Verification.VERIFIED)
    catalogue.save(verified)
    log.info("backup %s verified", label)
    return verified
