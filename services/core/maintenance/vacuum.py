"""VACUUM, ANALYZE and REINDEX that never stand in the bot's way for more than a moment:
lock_timeout makes a statement that cannot get its lock give up at once (it is retried a few
times, then the table is skipped and the report says so), statement_timeout bounds each
step, and REINDEX runs CONCURRENTLY (no lock that blocks writes)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import asyncpg

OPERATIONS = ("vacuum", "analyze", "reindex")
# A table needs VACUUM when dead rows exceed this share of its live rows (and MIN_DEAD).
DEAD_SHARE = 0.1
MIN_DEAD = 1000


@dataclass(frozen=True)
class Limits:
    lock_timeout_ms: int = 500
    statement_timeout_s: float = 600.0
    attempts: int = 3
    retry_pause_s: float = 1.0


@dataclass
class Step:
    operation: str
    table: str
    outcome: str  # "done", "skipped" (lock not granted), "failed"
    seconds: float
    attempts: int
    detail: str = ""


@dataclass
class MaintenanceReport:
    steps: list[Step] = field(default_factory=list)

    @property
    def failed(self) -> list[Step]:
        return [step for step in self.steps if step.outcome == "failed"]

    @property
    def skipped(self) -> list[Step]:
        return [step for step in self.steps if step.outcome == "skipped"]


async def tables(connection: asyncpg.Connection) -> list[str]:
    """The schema's tables (the migration role's), largest first by the catalogue's page
    count: no size function, which would wait for a lock before lock_timeout is set."""
    rows = await connection.fetch(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'public' AND c.relkind = 'r'"
        " AND pg_has_role(c.relowner, 'USAGE') ORDER BY c.relpages DESC, c.relname"
    )
    return [row["relname"] for row in rows]


async def needing_vacuum(connection: asyncpg.Connection) -> list[str]:
    """Tables whose dead rows exceed DEAD_SHARE of their live rows (and MIN_DEAD)."""
    rows = await connection.fetch(
        "SELECT relname FROM pg_stat_user_tables WHERE schemaname = 'public'"
        " AND n_dead_tup >= $1 AND n_dead_tup > $2 * greatest(n_live_tup, 1)"
        " ORDER BY n_dead_tup DESC",
        MIN_DEAD,
        DEAD_SHARE,
    )
    return [row["relname"] for row in rows]


def _statement(operation: str, table: str) -> str:
    name = '"' + table.replace('"', '""') + '"'
    if operation == "vacuum":
        return f"VACUUM (ANALYZE false) {name}"
    if operation == "analyze":
        return f"ANALYZE {name}"
    return f"REINDEX TABLE CONCURRENTLY {name}"


async def run(
    connection: asyncpg.Connection,
    operations: Sequence[str],
    targets: Sequence[str],
    limits: Limits = Limits(),
    progress: Callable[[Step], None] | None = None,
) -> MaintenanceReport:
    """Each operation on each table in turn; a table that cannot be locked within
    lock_timeout is retried `attempts` times and then skipped."""
    await connection.execute(
        f"SET lock_timeout = {int(limits.lock_timeout_ms)};"
        f" SET statement_timeout = {int(limits.statement_timeout_s * 1000)}"
    )
    report = MaintenanceReport()
    for operation in operations:
        for table in targets:
            step = await _one(connection, operation, table, limits)
            report.steps.append(step)
            if progress is not None:
                progress(step)
    return report


async def _one(connection: asyncpg.Connection, operation: str, table: str, limits: Limits) -> Step:
    started = time.monotonic()
    detail = ""
    for attempt in range(1, limits.attempts + 1):
        try:
            await connection.execute(_statement(operation, table))
        except asyncpg.LockNotAvailableError:
            detail = f"lock not granted within {limits.lock_timeout_ms} ms"
            if operation == "reindex":
                await _drop_leftovers(connection, table)
            if attempt < limits.attempts:
                await asyncio.sleep(limits.retry_pause_s)
            continue
        except asyncpg.PostgresError as error:
            if operation == "reindex":
                await _drop_leftovers(connection, table)
            seconds = round(time.monotonic() - started, 3)
            return Step(operation, table, "failed", seconds, attempt, str(error))
        return Step(operation, table, "done", round(time.monotonic() - started, 3), attempt)
    seconds = round(time.monotonic() - started, 3)
    return Step(operation, table, "skipped", seconds, limits.attempts, detail)


async def _drop_leftovers(connection: asyncpg.Connection, table: str) -> None:
    """An interrupted REINDEX CONCURRENTLY leaves an invalid copy (<index>_ccnew) that every
    write would still maintain: drop it."""
    leftovers = await connection.fetch(
        "SELECT i.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid"
        " JOIN pg_class t ON t.oid = x.indrelid WHERE t.relname = $1 AND NOT x.indisvalid"
        " AND i.relname LIKE '%\\_ccnew%'",
        table,
    )
    for row in leftovers:
        name = '"' + row["relname"].replace('"', '""') + '"'
        with contextlib.suppress(asyncpg.PostgresError):  # still locked: the next run's turn
            await connection.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
