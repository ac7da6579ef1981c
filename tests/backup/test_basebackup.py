"""Base backups: verified with pg_verifybackup against a SHA-256 manifest, catalogued on the
backup volume, a row in backup_runs; one flipped byte is reported as corrupt by `verify` and by
the restore drill."""

from __future__ import annotations

import json
import os
from pathlib import Path

import asyncpg

from infra.stack import LocalStack
from services.backup.basebackup import take_backup
from services.backup.catalogue import Catalogue, Verification
from services.backup.context import Context
from services.backup.drill import drill
from tests.backup.conftest import ContextFactory, cli, scrape


async def backup_now(context: Context) -> Path:
    backup = await take_backup(context.settings, context.live, context.runs, context.user)
    return Catalogue(context.settings.backup_dir).path(backup.label)


async def test_base_backup_is_verified_catalogued_and_recorded(
    make_context: ContextFactory, owner: asyncpg.Connection
) -> None:
    context = await make_context("base")
    directory = await backup_now(context)

    manifest = json.loads((directory / "backup_manifest").read_text())
    assert {entry["Checksum-Algorithm"] for entry in manifest["Files"]} == {"SHA256"}
    [backup] = Catalogue(context.settings.backup_dir).backups()
    assert backup.verification is Verification.VERIFIED
    assert backup.size_bytes > 1_000_000
    assert (context.settings.archive_dir).is_dir()

    row = await owner.fetchrow(
        "SELECT kind, status, size_bytes, details, finished_at FROM backup_runs WHERE label = $1",
        backup.label,
    )
    assert row is not None
    assert (row["kind"], row["status"]) == ("base", "succeeded")
    assert row["size_bytes"] == backup.size_bytes
    assert json.loads(row["details"])["start_wal"] == backup.start_wal
    assert row["finished_at"] is not None

    metrics = await scrape(context)
    assert metrics["backup_last_success_timestamp_seconds"] == backup.finished_at.timestamp()
    assert metrics["backup_last_size_bytes"] == backup.size_bytes
    assert metrics['backup_base_backups{state="verified"}'] == 1.0


def flip_one_byte(data_dir: Path) -> Path:
    """Flip a byte in the middle of the largest relation file of the backup."""
    victim = max((data_dir / "base").rglob("*"), key=lambda path: path.stat().st_size)
    with victim.open("r+b") as handle:
        handle.seek(victim.stat().st_size // 2)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0xFF]))
    return victim


async def test_flipped_byte_is_reported_corrupt_by_verify_and_by_the_drill(
    make_context: ContextFactory,
    stack: LocalStack,
    owner: asyncpg.Connection,
) -> None:
    context = await make_context("corrupt")
    directory = await backup_now(context)
    assert cli(context, stack, "verify").returncode == 0

    victim = flip_one_byte(directory)

    verified = cli(context, stack, "verify")
    assert verified.returncode == 1
    assert "corrupt" in verified.stderr
    assert victim.name in verified.stdout + verified.stderr
    [backup] = Catalogue(context.settings.backup_dir).backups()
    assert backup.verification is Verification.CORRUPT

    result = await drill(context.settings, context.live, context.runs, context.user)
    assert not result.succeeded
    assert result.error is not None and "corrupt" in result.error
    row = await owner.fetchrow(
        "SELECT status, error FROM backup_runs WHERE kind = 'drill' ORDER BY id DESC LIMIT 1"
    )
    assert row is not None and row["status"] == "failed" and "corrupt" in row["error"]
    metrics = await scrape(context)
    assert metrics["backup_drill_last_success"] == 0.0
    assert metrics['backup_base_backups{state="corrupt"}'] == 1.0
