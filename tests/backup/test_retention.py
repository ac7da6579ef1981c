"""Retention: exactly the newest backup of each of the last N days and M weeks is kept; the WAL
older than the oldest kept backup goes; the newest backup still restores to latest.

It deletes archived WAL of the shared test stack, so it runs after the modules that restore
(pytest runs the files of a directory in name order)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg

from services.backup.basebackup import take_backup
from services.backup.catalogue import BaseBackup, Catalogue, Verification
from services.backup.restore import restore
from services.backup.retention import apply_retention, select_kept
from tests.backup.conftest import ContextFactory, add_flag, flags_in

NOW = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)  # a Sunday


def synthetic(started: datetime, verification: Verification = Verification.VERIFIED) -> BaseBackup:
    return BaseBackup(
        label=started.strftime("base-%Y%m%dT%H%M%SZ"),
        system_identifier="1",
        started_at=started,
        finished_at=started + timedelta(minutes=5),
        timeline=1,
        start_wal="000000010000000000000001",
        size_bytes=1,
        duration_seconds=1.0,
        verify_seconds=0.5,
        verification=verification,
    )


def test_policy_keeps_the_newest_of_each_day_and_week() -> None:
    # Two backups a day for 60 days: 01:00 and 03:00.
    backups = [
        synthetic(NOW - timedelta(days=day, hours=hours)) for day in range(60) for hours in (0, 2)
    ]
    kept = select_kept(backups, keep_daily=7, keep_weekly=4)

    daily = {(NOW - timedelta(days=day)).strftime("base-%Y%m%dT%H%M%SZ") for day in range(7)}
    # The newest of each ISO week (Monday to Sunday): this Sunday's, and the Sundays before.
    weekly = {(NOW - timedelta(weeks=week)).strftime("base-%Y%m%dT%H%M%SZ") for week in range(4)}
    assert kept == daily | weekly
    assert len(kept) == 7 + 3  # this week's Sunday counts for both


def test_policy_always_keeps_the_newest_verified_backup() -> None:
    verified = synthetic(NOW - timedelta(days=1))
    corrupt = synthetic(NOW, Verification.CORRUPT)
    assert select_kept([verified, corrupt], keep_daily=1, keep_weekly=0) == {
        corrupt.label,
        verified.label,
    }


async def test_retention_removes_old_backups_and_wal_and_the_newest_still_restores(
    make_context: ContextFactory, owner: asyncpg.Connection
) -> None:
    context = await make_context("retention")
    settings = context.settings.model_copy(update={"keep_daily": 1, "keep_weekly": 0})
    taken = []
    for number in range(3):
        await add_flag(owner, f"retention-{number}")
        taken.append(await take_backup(settings, context.live, context.runs, context.user))
    await add_flag(owner, "retention-last")
    histories = set(settings.archive_dir.glob("*.history.gz"))

    result = await apply_retention(settings, context.user)

    newest = taken[-1]
    assert result.kept == [newest.label]
    assert result.removed == [backup.label for backup in taken[:2]]
    catalogue = Catalogue(settings.backup_dir)
    assert [backup.label for backup in catalogue.backups()] == [newest.label]
    assert not catalogue.path(taken[0].label).exists()
    archived = sorted(path.name for path in settings.archive_dir.glob("0*.gz"))
    segments = [name for name in archived if len(name) == len("000000010000000000000001.gz")]
    assert min(name[8:24] for name in segments) == newest.start_wal[8:]
    # Timeline history files stay: a restore needs them to follow a timeline.
    assert set(settings.archive_dir.glob("*.history.gz")) == histories

    report = await restore(settings, context.live, context.user, context.runs, target_time=None)
    assert report.backup == newest.label
    assert await flags_in(context, report.data_dir, "retention-") == {
        "retention-0",
        "retention-1",
        "retention-2",
        "retention-last",
    }
