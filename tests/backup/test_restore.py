"""Point-in-time recovery on the local stack: rows A, a noted time, rows B; a restore to that
time has A and not B, a restore to latest has both, and a second point-in-time restore after a
first one works; a test restore never writes into the archive, so it cannot hijack a later
restore to latest once the live server is lost."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import os
import shutil
import socket
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import asyncpg
import pytest

from infra.stack import LocalStack
from services.backup.basebackup import take_backup
from services.backup.context import Context
from services.backup.live import LiveServer
from services.backup.restore import restore
from tests.backup.conftest import ContextFactory, add_flag, cli, flags_in

PREFIX = "pitr-"


@dataclass(frozen=True)
class Scenario:
    context: Context
    between: datetime  # after the A rows committed, before the B rows


@pytest.fixture(scope="module")
async def scenario(make_context: ContextFactory, endpoints: dict[str, str]) -> Scenario:
    context = await make_context("restore")
    await take_backup(context.settings, context.live, context.runs, context.user)
    owner = await asyncpg.connect(endpoints["postgres_dsn"])
    try:
        await add_flag(owner, f"{PREFIX}a1")
        await add_flag(owner, f"{PREFIX}a2")
        await asyncio.sleep(0.5)
        between: datetime = await owner.fetchval("SELECT now()")
        await asyncio.sleep(0.5)
        await add_flag(owner, f"{PREFIX}b1")
    finally:
        await owner.close()
    return Scenario(context, between)


async def test_restore_to_a_time_has_the_rows_before_it_and_not_after(scenario: Scenario) -> None:
    context = scenario.context
    report = await restore(
        context.settings, context.live, context.user, context.runs, target_time=scenario.between
    )
    assert report.target_time == scenario.between
    assert await flags_in(context, report.data_dir, PREFIX) == {f"{PREFIX}a1", f"{PREFIX}a2"}


async def test_restore_to_latest_has_every_committed_row(
    scenario: Scenario, owner: asyncpg.Connection
) -> None:
    context = scenario.context
    report = await restore(
        context.settings, context.live, context.user, context.runs, target_time=None
    )
    assert await flags_in(context, report.data_dir, PREFIX) == {
        f"{PREFIX}a1",
        f"{PREFIX}a2",
        f"{PREFIX}b1",
    }
    row = await owner.fetchrow(
        "SELECT status, details FROM backup_runs WHERE kind = 'restore' AND label = $1",
        report.data_dir.parent.name,
    )
    assert row is not None and row["status"] == "succeeded"
    assert json.loads(row["details"])["new_timeline"] == report.new_timeline


async def test_second_point_in_time_restore_after_a_first_one_works(scenario: Scenario) -> None:
    context = scenario.context
    first = await restore(
        context.settings, context.live, context.user, context.runs, target_time=scenario.between
    )
    second = await restore(
        context.settings, context.live, context.user, context.runs, target_time=scenario.between
    )
    assert first.new_timeline > 1 and second.new_timeline > 1
    # Neither wrote its branch into the live archive: its history waits, marked ready, in the
    # restored pg_wal for the day it runs as the live server.
    for report in (first, second):
        history = f"{report.new_timeline:08X}.history"
        assert not (context.settings.archive_dir / f"{history}.gz").exists()
        assert (report.data_dir / "pg_wal" / "archive_status" / f"{history}.ready").exists()
    assert await flags_in(context, second.data_dir, PREFIX) == {f"{PREFIX}a1", f"{PREFIX}a2"}


def lost(context: Context) -> LiveServer:
    """The live server as a restore sees it once it is lost: nothing answers on its port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    settings = context.settings.model_copy(update={"pg_port": dead_port})
    return LiveServer(settings, context.live.role)


async def test_a_test_restore_cannot_hijack_a_restore_after_the_live_server_is_lost(
    scenario: Scenario, owner: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    context = scenario.context
    test_restore = await restore(
        context.settings, context.live, context.user, context.runs, target_time=scenario.between
    )
    await add_flag(owner, f"{PREFIX}c1")  # committed on the live server after the test restore
    live_timeline = await context.live.switch_wal_and_wait()
    # A branch newer than the live timeline in the archive, as a switched-over restore (or an
    # older version's test restore) leaves: the restore follows the live one and says so.
    with gzip.open(context.settings.archive_dir / "0000002A.history.gz", "wt") as history:
        history.write("1\t0/3000000\tbefore 2000-01-01 00:00:00+00\n")
    try:
        with caplog.at_level(logging.WARNING, logger="services.backup"):
            report = await restore(
                context.settings, lost(context), context.user, context.runs, target_time=None
            )
    finally:
        (context.settings.archive_dir / "0000002A.history.gz").unlink()
    assert report.followed_timeline == str(live_timeline) != str(test_restore.new_timeline)
    assert report.newer_timelines == [0x2A]
    assert "WARNING: the WAL archive holds timeline(s) 42" in caplog.text
    assert report.last_transaction_at is not None
    assert f"{PREFIX}c1" in await flags_in(context, report.data_dir, PREFIX)


def test_restore_into_a_new_directory_leaves_the_owner_of_existing_ones_alone(
    scenario: Scenario, stack: LocalStack
) -> None:
    parent = stack.paths.root / "restore-owner-check"
    shutil.rmtree(parent, ignore_errors=True)
    (parent / "taken").mkdir(parents=True)
    owner_before = parent.stat().st_uid
    refused = cli(scenario.context, stack, "restore", "--into", str(parent / "taken"))
    assert refused.returncode == 1 and "already exists" in refused.stderr
    assert parent.stat().st_uid == owner_before
    result = cli(scenario.context, stack, "restore", "--into", str(parent / "new" / "restore"))
    assert result.returncode == 0, result.stderr
    assert parent.stat().st_uid == owner_before == os.getuid()
    service_user = scenario.context.user
    assert (parent / "new").stat().st_uid == service_user.uid
    assert (parent / "new" / "restore" / "pgdata").stat().st_uid == service_user.uid


def test_restore_command_says_what_it_did_and_how_to_switch_over(
    scenario: Scenario, stack: LocalStack
) -> None:
    context = scenario.context
    result = cli(context, stack, "restore", "--target-time", scenario.between.isoformat())
    assert result.returncode == 0, result.stderr
    output = result.stdout
    assert "recovered to      " + scenario.between.isoformat() in output
    assert "waiting for the live server to archive" in output  # progress
    data_dir = next(line.split()[2] for line in output.splitlines() if "data directory" in line)
    assert Path(data_dir).is_dir()
    # The switch-over steps name the restored directory and the stack's.
    assert f"mv {data_dir} {stack.paths.root}/pgdata" in output


def test_restore_to_a_time_before_any_backup_fails_clearly(
    scenario: Scenario, stack: LocalStack
) -> None:
    result = cli(scenario.context, stack, "restore", "--target-time", "2001-01-01 00:00")
    assert result.returncode == 1
    assert result.stderr.startswith("error: no verified base backup finished before 2001-01-01")


def test_verifying_an_unknown_backup_is_one_line(scenario: Scenario, stack: LocalStack) -> None:
    result = cli(scenario.context, stack, "verify", "nosuch")
    assert result.returncode == 1
    assert result.stderr.startswith("error: no backup 'nosuch' in ")
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
