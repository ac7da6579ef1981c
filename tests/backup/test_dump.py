"""Logical dumps: pg_dump in custom format as the backup role, readable by pg_restore, with a
backup_runs row."""

from __future__ import annotations

import asyncpg

from services.backup.commands import run
from services.backup.dump import take_dump
from tests.backup.conftest import ContextFactory


async def test_dump_is_a_readable_custom_format_archive(
    make_context: ContextFactory, owner: asyncpg.Connection
) -> None:
    context = await make_context("dump")
    path = await take_dump(context.settings, context.live, context.runs, context.user)

    listing = await run(
        [context.settings.pg_bindir / "pg_restore", "--list", path],
        what="pg_restore --list",
        user=context.user,
        quiet=True,
    )
    assert "TABLE DATA public feature_flags" in listing
    assert "TABLE DATA public backup_runs" in listing
    row = await owner.fetchrow(
        "SELECT status, size_bytes FROM backup_runs WHERE kind = 'dump' AND label = $1", path.name
    )
    assert row is not None and row["status"] == "succeeded"
    assert row["size_bytes"] == path.stat().st_size
