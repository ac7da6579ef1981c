"""Retention (services.core.maintenance.retention) on the real database, with a clock the test
sets: what each policy removes and what it keeps; and maintenance while updates keep coming."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import asyncpg
import sqlalchemy as sa

from services.core.db import Database
from services.core.maintenance import vacuum
from services.core.maintenance.retention import TELEGRAM_REDELIVERY, Periods, apply_retention

PERIODS = Periods(
    update_margin=timedelta(hours=24),
    outbox=timedelta(days=30),
    messages=timedelta(days=365),
    audit=timedelta(days=730),
    backup_runs=timedelta(days=180),
)
# The tests' "now": far enough ahead that every row the rest of the suite writes is inside every
# window, so only the rows placed here are old enough to go.
NOW = datetime.now(UTC) + timedelta(days=3)


async def test_processed_updates_kept_inside_the_redelivery_window(
    database: Database, owner: asyncpg.Connection
) -> None:
    window = TELEGRAM_REDELIVERY + PERIODS.update_margin
    inside, outside = 9_100_000_001, 9_100_000_002
    for update_id, age in (
        (inside, window - timedelta(minutes=1)),
        (outside, window + timedelta(minutes=1)),
    ):
        async with database.unit_of_work() as uow:
            assert await uow.updates.record(update_id)
        await owner.execute(
            "UPDATE processed_updates SET processed_at = $2 WHERE update_id = $1",
            update_id,
            NOW - age,
        )
    report = await apply_retention(database, PERIODS, NOW, batch_size=2)
    assert report.removed["processed_updates"] >= 1
    # Telegram redelivers the update just inside the window: it is recognised, applied once.
    async with database.unit_of_work() as uow:
        assert not await uow.updates.record(inside)
    remaining = await owner.fetch(
        "SELECT update_id FROM processed_updates WHERE update_id = ANY($1::bigint[])",
        [inside, outside],
    )
    assert [row["update_id"] for row in remaining] == [inside]


async def test_outbox_messages_audit_and_backup_runs(
    database: Database, owner: asyncpg.Connection
) -> None:
    old = NOW - timedelta(days=800)
    user = await owner.fetchval(
        "INSERT INTO users (telegram_id, first_name) VALUES (8800001, 'Kept') RETURNING id"
    )
    erased = await owner.fetchval(
        "INSERT INTO users (telegram_id, first_name, deleted_at) VALUES (-8800002, '', now())"
        " RETURNING id"
    )
    outbox = {
        status: await owner.fetchval(
            "INSERT INTO outbox (chat_id, method, payload, status, created_at, sent_at) VALUES"
            " (1, 'sendMessage', '{}', $1, $2, $2) RETURNING id",
            status,
            old,
        )
        for status in ("sent", "withdrawn", "pending", "failed")
    }
    recent_sent = await owner.fetchval(
        "INSERT INTO outbox (chat_id, method, payload, status, sent_at)"
        " VALUES (1, 'sendMessage', '{}', 'sent', now())"
        " RETURNING id"
    )
    old_message = await owner.fetchval(
        "INSERT INTO conversation_messages (user_id, direction, created_at) VALUES ($1, 'in', $2)"
        " RETURNING id",
        user,
        old,
    )
    new_message = await owner.fetchval(
        "INSERT INTO conversation_messages (user_id, direction) VALUES ($1, 'in') RETURNING id",
        user,
    )
    erased_message = await owner.fetchval(
        "INSERT INTO conversation_messages (user_id, direction) VALUES ($1, 'in') RETURNING id",
        erased,
    )
    audit = {}
    for key, action, entity_id, created in (
        ("old", "flag.set", "x", old),
        ("new", "flag.set", "x", NOW - timedelta(days=1)),
        ("about_erased", "user.block", str(erased), NOW - timedelta(days=1)),
        ("erasure", "user.erase", str(erased), NOW - timedelta(days=1)),
    ):
        audit[key] = await owner.fetchval(
            "INSERT INTO audit_log (actor, action, entity, entity_id, summary, created_at)"
            " VALUES ('t', $1, $2, $3, '{}', $4) RETURNING id",
            action,
            "user" if action.startswith("user.") else "flag",
            entity_id,
            created,
        )
    runs = {
        status: await owner.fetchval(
            "INSERT INTO backup_runs (kind, status, label, details, started_at) VALUES"
            " ('base', $1, 'retention-test', '{}', $2) RETURNING id",
            status,
            NOW - timedelta(days=200),
        )
        for status in ("succeeded", "running")
    }

    report = await apply_retention(database, PERIODS, NOW, batch_size=3)

    async def ids(table: str, candidates: list[int]) -> set[int]:
        rows = await owner.fetch(f"SELECT id FROM {table} WHERE id = ANY($1::bigint[])", candidates)
        return {row["id"] for row in rows}

    assert await ids("outbox", [*outbox.values(), recent_sent]) == {
        outbox["pending"],
        outbox["failed"],
        recent_sent,
    }
    assert await ids("conversation_messages", [old_message, new_message, erased_message]) == {
        new_message
    }
    assert await ids("audit_log", list(audit.values())) == {audit["new"], audit["erasure"]}
    assert await ids("backup_runs", list(runs.values())) == {runs["running"]}
    for table in ("outbox", "conversation_messages", "audit_log", "backup_runs"):
        assert report.removed[table] >= 1 and report.seconds[table] >= 0


async def test_maintenance_while_updates_arrive_steadily(
    database: Database, endpoints: dict[str, str]
) -> None:
    """Every operation on every table while updates are processed at a steady rate, each in
    its own transaction as the bot does: none fails, none waits a second on a lock (each
    update's own lock_timeout says so: a wall-clock bound would also count a busy machine)."""
    from urllib.parse import urlsplit

    from services.core.maintenance.connect import as_owner
    from services.core.settings import MigrationSettings

    url = urlsplit(endpoints["postgres_dsn"])
    owner_settings = MigrationSettings(
        host=url.hostname or "",
        port=url.port or 0,
        database=url.path.lstrip("/"),
        user=url.username or "",
        password=url.password or "",
    )

    latencies: list[float] = []
    failures: list[BaseException] = []
    stop = asyncio.Event()

    async def updates() -> None:
        update_id = 9_200_000_000
        while not stop.is_set():
            update_id += 1
            started = time.monotonic()
            try:
                async with database.unit_of_work() as uow:
                    await uow.session.execute(sa.text("SET LOCAL lock_timeout = '1s'"))
                    await uow.updates.record(update_id)
                    await uow.outbox.enqueue(1, f"update {update_id}")
            except Exception as error:
                failures.append(error)
            latencies.append(time.monotonic() - started)
            await asyncio.sleep(0.02)  # about 40 updates a second

    traffic = asyncio.create_task(updates())
    try:
        await asyncio.sleep(0.5)
        async with as_owner(owner_settings) as connection:
            report = await vacuum.run(
                connection,
                vacuum.OPERATIONS,
                await vacuum.tables(connection),
                vacuum.Limits(lock_timeout_ms=200, retry_pause_s=0.2),
            )
        await asyncio.sleep(0.5)
    finally:
        stop.set()
        await traffic
    assert not failures, failures[:3]
    assert len(latencies) > 20
    assert not report.failed, report.failed
    steps = {step.operation: 0.0 for step in report.steps}
    for step in report.steps:
        steps[step.operation] += step.seconds
    print(
        f"maintenance under load: {len(latencies)} updates, p50 "
        f"{sorted(latencies)[len(latencies) // 2] * 1000:.1f} ms, max {max(latencies) * 1000:.1f}"
        f" ms; seconds per operation {steps}; skipped {len(report.skipped)}"
    )
