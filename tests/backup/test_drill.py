"""Restore drills: the newest backup plus the archived WAL restore into a scratch server whose
schema is at the migrations' head, whose indexes pass amcheck and whose rows are counted; the
result lands in backup_runs and in the metrics."""

from __future__ import annotations

import json

import asyncpg

from services.backup.basebackup import take_backup
from services.backup.drill import drill, expected_revision
from tests.backup.conftest import ContextFactory, add_flag, scrape


async def test_drill_records_its_result_in_backup_runs_and_metrics(
    make_context: ContextFactory, owner: asyncpg.Connection
) -> None:
    context = await make_context("drill")
    await take_backup(context.settings, context.live, context.runs, context.user)
    # Written after the backup: the drill finds it only by replaying the archived WAL.
    await add_flag(owner, "drill-after-backup")
    flags = await owner.fetchval("SELECT count(*) FROM feature_flags")

    result = await drill(context.settings, context.live, context.runs, context.user)

    assert result.succeeded, result.error
    assert result.revision == expected_revision()
    assert result.indexes_checked > 50  # every B-tree, the catalogs' included
    assert result.row_counts["feature_flags"] == flags
    row = await owner.fetchrow(
        "SELECT status, label, details FROM backup_runs WHERE kind = 'drill' ORDER BY id DESC"
    )
    assert row is not None and row["status"] == "succeeded"
    details = json.loads(row["details"])
    assert details["duration_seconds"] == result.duration_seconds
    assert details["row_counts"]["feature_flags"] == flags
    metrics = await scrape(context)
    assert metrics["backup_drill_last_success"] == 1.0
    assert metrics["backup_drill_last_duration_seconds"] == result.duration_seconds
    assert metrics["backup_drill_last_timestamp_seconds"] == result.started_at.timestamp()
    # The scratch server is gone and so is its directory.
    assert not any((context.settings.backup_dir / "drills").iterdir())
