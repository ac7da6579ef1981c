"""Logical dumps: pg_dump in custom format as the backup role, readable by pg_restore, with a
backup_runs row."""

from __future__ import annotations

import logging

import asyncpg
import pytest

from services.backup.commands import run
from services.backup.dump import take_dump
from tests.backup.conftest import ContextFactory


async def test_dump_is_a_readable_custom_format_archive(
    make_context: ContextFactory, owner: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    context = await make_context("dump")
    with caplog.at_level(logging.INFO, logger="services.backup"):
        path = await take_dump(context.settings, context.live, context.runs, context.user)

    # Progress, one numbered line per table, instead of pg_dump --verbose's ~70 lines.
    shown = [record.getMessage() for record in caplog.records]
    tables = await owner.fetchval(
        "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', "
        "'information_schema')"
    )
    progress = [line for line in shown if line.lstrip().startswith("table ")]
    assert len(progress) == tables
    assert progress[-1].strip().startswith(f"table {tables}/{tables}: ")
    assert any("public.users" in line for line in progress)
    assert not [line for line in shown if "pg_dump:" in line], shown
    assert len(shown) == tables + 2  # the start, a line per table, the result

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
