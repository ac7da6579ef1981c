"""Retention: rows past their period are deleted in small batches, each its own short
transaction through the services' pool, so no lock is held for long and the bot's updates
interleave. The clock is the caller's (the tests move it).

Processed update ids are kept for Telegram's redelivery window (it retries an update for at
most 24 hours) plus a margin: inside it a redelivered update still finds its id and is
applied once. A GDPR-erased user's conversation rows (text already removed) and the audit
entries about them (except the erasure's own record) go at once."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa

from ..db import Database

# Telegram gives up redelivering an update after 24 hours.
TELEGRAM_REDELIVERY = timedelta(hours=24)


@dataclass(frozen=True)
class Periods:
    """How long each kind of row is kept."""

    update_margin: timedelta = timedelta(hours=24)
    outbox: timedelta = timedelta(days=30)
    messages: timedelta = timedelta(days=365)
    audit: timedelta = timedelta(days=730)
    backup_runs: timedelta = timedelta(days=180)


@dataclass
class RetentionReport:
    removed: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.removed.values())


# Each policy: the table, its key, and the condition of a row to delete (:cutoff bound).
# The erased user's leftovers need no cutoff: the rows say nothing any more.
ERASED_USERS = "SELECT id FROM users WHERE deleted_at IS NOT NULL"
POLICIES: dict[str, tuple[str, str]] = {
    "processed_updates": ("update_id", "processed_at < :cutoff"),
    "outbox": (
        "id",
        "status IN ('sent', 'withdrawn') AND coalesce(sent_at, created_at) < :cutoff",
    ),
    "conversation_messages": (
        "id",
        f"(created_at < :cutoff OR user_id IN ({ERASED_USERS}))",
    ),
    "audit_log": (
        "id",
        "(created_at < :cutoff OR (entity = 'user' AND action <> 'user.erase' AND entity_id IN"
        f" (SELECT id::text FROM ({ERASED_USERS}) AS erased)))",
    ),
    "backup_runs": ("id", "status <> 'running' AND started_at < :cutoff"),
}


def cutoffs(periods: Periods, now: datetime) -> dict[str, datetime]:
    return {
        "processed_updates": now - TELEGRAM_REDELIVERY - periods.update_margin,
        "outbox": now - periods.outbox,
        "conversation_messages": now - periods.messages,
        "audit_log": now - periods.audit,
        "backup_runs": now - periods.backup_runs,
    }


async def apply_retention(
    database: Database, periods: Periods, now: datetime, *, batch_size: int = 1000
) -> RetentionReport:
    """Delete every row past its period, batch_size rows per transaction."""
    report = RetentionReport()
    for table, cutoff in cutoffs(periods, now).items():
        key, condition = POLICIES[table]
        # SKIP LOCKED: a row the bot is writing right now is left for the next run.
        statement = sa.text(
            f"DELETE FROM {table} WHERE {key} IN (SELECT {key} FROM {table} WHERE {condition}"
            " LIMIT :batch FOR UPDATE SKIP LOCKED)"
        )
        started = time.monotonic()
        removed = 0
        while True:
            async with database.unit_of_work() as uow:
                result = await uow.session.execute(
                    statement, {"cutoff": cutoff, "batch": batch_size}
                )
                count = int(result.rowcount)  # type: ignore[attr-defined]
            removed += count
            if count < batch_size:
                break
        report.removed[table] = removed
        report.seconds[table] = round(time.monotonic() - started, 3)
    return report
