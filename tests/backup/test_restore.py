"""Point-in-time recovery on the local stack: rows A, a noted time, rows B; a restore to that
time has A and not B, a restore to latest has both, and a second point-in-time restore after a
first one (which moved the archive onto a new timeline) works and promotes onto a newer one."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import asyncpg
import pytest

from infra.stack import LocalStack
from services.backup.basebackup import take_backup
from services.backup.context import Context
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
    # The first restore archived its new timeline's history, so the second picks a newer one
    # instead of colliding with it.
    assert second.new_timeline > first.new_timeline > 1
    history = context.settings.archive_dir / f"{first.new_timeline:08X}.history.gz"
    assert history.exists()
    assert await flags_in(context, second.data_dir, PREFIX) == {f"{PREFIX}a1", f"{PREFIX}a2"}


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
