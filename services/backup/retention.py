"""Retention: keep the newest backup of each of the last N days and of each of the last M ISO
weeks (and always the newest verified one); delete the rest, then the archived WAL older than
the oldest kept backup's first segment, with pg_archivecleanup."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass

from services.core.os_user import ServiceUser

from .catalogue import BaseBackup, Catalogue
from .commands import run
from .offsite import first_unshipped
from .settings import BackupServiceSettings

log = logging.getLogger("services.backup")


@dataclass(frozen=True)
class RetentionResult:
    kept: list[str]
    removed: list[str]
    wal_kept_from: str | None


def select_kept(backups: Sequence[BaseBackup], keep_daily: int, keep_weekly: int) -> set[str]:
    """Labels to keep: the newest backup of each of the newest keep_daily days and of each of
    the newest keep_weekly ISO weeks that have one, plus the newest verified backup."""
    newest_first = sorted(backups, key=lambda backup: backup.started_at, reverse=True)
    kept: set[str] = set()
    for bucket, limit in ((_day, keep_daily), (_week, keep_weekly)):
        seen: set[tuple[int, ...]] = set()
        for backup in newest_first:
            key = bucket(backup)
            if key not in seen and len(seen) < limit:
                seen.add(key)
                kept.add(backup.label)
    verified = [backup for backup in newest_first if backup.verification == "verified"]
    if verified:
        kept.add(verified[0].label)
    return kept


def _day(backup: BaseBackup) -> tuple[int, ...]:
    return backup.started_at.timetuple()[:3]


def _week(backup: BaseBackup) -> tuple[int, ...]:
    year, week, _ = backup.started_at.isocalendar()
    return (year, week)


async def apply_retention(settings: BackupServiceSettings, user: ServiceUser) -> RetentionResult:
    catalogue = Catalogue(settings.backup_dir)
    backups = catalogue.backups()
    kept = select_kept(backups, settings.keep_daily, settings.keep_weekly)
    removed = []
    for backup in backups:
        if backup.label not in kept:
            log.info("retention: removing base backup %s", backup.label)
            catalogue.forget(backup.label)
            shutil.rmtree(catalogue.path(backup.label))
            removed.append(backup.label)
    survivors = [backup for backup in backups if backup.label in kept]
    oldest = min(survivors, key=lambda backup: backup.start_wal[8:]) if survivors else None
    keep_from = oldest.start_wal if oldest is not None else None
    unshipped = first_unshipped(settings)
    if keep_from is not None and unshipped is not None and unshipped[8:] < keep_from[8:]:
        # The local archive is the offsite copy's spool: WAL not offsite yet stays.
        log.info("retention: keeping archived WAL from %s: not offsite yet", unshipped)
        keep_from = unshipped
    if keep_from is not None:
        # pg_archivecleanup ignores the timeline part of the name: every timeline's segments
        # before this position go, history files (needed to follow timelines) stay.
        log.info("retention: removing archived WAL before %s", keep_from)
        await run(
            [
                settings.pg_bindir / "pg_archivecleanup",
                "-x",
                ".gz",
                settings.archive_dir,
                keep_from,
            ],
            what="pg_archivecleanup",
            user=user,
        )
    log.info("retention: kept %d base backups, removed %d", len(survivors), len(removed))
    return RetentionResult(
        kept=[backup.label for backup in survivors],
        removed=removed,
        wal_kept_from=keep_from,
    )
