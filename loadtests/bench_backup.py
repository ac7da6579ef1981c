"""Benchmark of the backup service on a database of at least 1 GB: base-backup throughput,
restore time, and the data at risk (the archive_timeout bound and the measured delay between
a commit and its WAL segment being archived).

It runs its own local stack (default /tmp/botstack-bench-backup, port base 25930) so that the
development stack keeps its data; `--keep` leaves that stack running afterwards.

    python -m loadtests.bench_backup [--size-mb 1024] [--samples 1] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from infra.stack import LocalStack
from services.backup.basebackup import take_backup
from services.backup.context import Context
from services.backup.live import LiveServer
from services.backup.restore import discard, restore
from services.backup.runs import RunLog
from services.backup.settings import BackupServiceSettings
from services.core.db import Database
from services.core.os_user import ServiceUser
from services.core.settings import BackupRoleSettings, DatabaseSettings

# ~1 KB of incompressible text per message (28 MD5s), under the 2 KB TOAST threshold, so the
# table's size on disk is what a backup copies.
BATCH_ROWS = 50_000
LOAD_BATCH = """
INSERT INTO conversation_messages (user_id, direction, text, context)
SELECT 1 + (g % 1000), 'in',
       (SELECT string_agg(md5(g::text || '-' || i), '') FROM generate_series(1, 28) AS i),
       '{}'
  FROM generate_series($1::bigint, $1::bigint + $2 - 1) AS g
"""


def context_for(stack: LocalStack, endpoints: dict[str, str]) -> Context:
    backup, bouncer = urlsplit(endpoints["backup_dsn"]), urlsplit(endpoints["pgbouncer_dsn"])
    settings = BackupServiceSettings(
        state_dir=stack.paths.root,
        MIGRATE_HOST=backup.hostname,
        MIGRATE_PORT=backup.port,
        MIGRATE_DATABASE=backup.path.lstrip("/"),
        # Loading 1 GB leaves a backlog of WAL for the archiver to compress.
        archive_wait_seconds=900,
    )
    database = Database(
        DatabaseSettings(
            host=bouncer.hostname or "",
            port=bouncer.port or 0,
            name=bouncer.path.lstrip("/"),
            user=bouncer.username or "",
            password=SecretStr(bouncer.password or ""),
        ),
        CollectorRegistry(),
    )
    role = BackupRoleSettings(user=backup.username or "", password=SecretStr(backup.password or ""))
    return Context(
        settings=settings,
        live=LiveServer(settings, role),
        database=database,
        runs=RunLog(database),
        user=ServiceUser.detect(),
    )


async def load(dsn: str, size_mb: int) -> int:
    """Grow the database to size_mb with conversation messages; its size in bytes."""
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(
            "INSERT INTO users (telegram_id, first_name) SELECT g, 'bench ' || g "
            "FROM generate_series(1, 1000) AS g ON CONFLICT DO NOTHING"
        )
        size: int = await connection.fetchval("SELECT pg_database_size(current_database())")
        start = await connection.fetchval("SELECT count(*) FROM conversation_messages")
        clock = time.monotonic()
        while size < size_mb * 1024 * 1024:
            await connection.execute(LOAD_BATCH, start, BATCH_ROWS)
            start += BATCH_ROWS
            size = await connection.fetchval("SELECT pg_database_size(current_database())")
            print(
                f"  loaded {size / 2**20:7.0f} MiB ({time.monotonic() - clock:5.0f} s)", flush=True
            )
        await connection.execute("VACUUM ANALYZE conversation_messages")
        return size
    finally:
        await connection.close()


async def commit_to_archive_seconds(dsn: str, backup_dsn: str) -> float:
    """Commit one row on an otherwise idle server and time until its segment is archived."""
    owner, backup = await asyncpg.connect(dsn), await asyncpg.connect(backup_dsn)
    try:
        await owner.execute(
            "INSERT INTO processed_updates (update_id) SELECT coalesce(max(update_id), 0) + 1 "
            "FROM processed_updates"
        )
        committed = time.monotonic()
        segment = await owner.fetchval("SELECT pg_walfile_name(pg_current_wal_insert_lsn())")
        while True:
            last = await backup.fetchval("SELECT last_archived_wal FROM pg_stat_archiver")
            if last is not None and last[8:24] >= segment[8:24]:
                return time.monotonic() - committed
            await asyncio.sleep(0.1)
    finally:
        await owner.close()
        await backup.close()


async def run(args: argparse.Namespace) -> None:
    stack = LocalStack(args.state_dir, port_base=args.port_base)
    print(f"stack in {args.state_dir} (port base {args.port_base}) ...", flush=True)
    endpoints = stack.up()
    size = await load(endpoints["postgres_dsn"], args.size_mb)
    print(f"database: {size / 2**20:.0f} MiB", flush=True)
    context = context_for(stack, endpoints)
    try:
        backup = await take_backup(context.settings, context.live, context.runs, context.user)
        copy_seconds = backup.duration_seconds - backup.verify_seconds
        report = await restore(
            context.settings, context.live, context.user, context.runs, target_time=None
        )
        discard(report.data_dir.parent)
        connection = await asyncpg.connect(endpoints["backup_dsn"])
        try:
            archive_timeout = await connection.fetchval("SHOW archive_timeout")
        finally:
            await connection.close()
        print("measuring commit-to-archive delay on an idle server ...", flush=True)
        delays = [
            await commit_to_archive_seconds(endpoints["postgres_dsn"], endpoints["backup_dsn"])
            for _ in range(args.samples)
        ]
    finally:
        await context.database.dispose()
        if not args.keep:
            stack.down(purge=True)
    mb = backup.size_bytes / 2**20
    print()
    print(f"base backup:      {mb:.0f} MiB in {copy_seconds:.1f} s: {mb / copy_seconds:.1f} MiB/s")
    print(
        f"verification:     {backup.verify_seconds:.1f} s ({mb / backup.verify_seconds:.1f} MiB/s)"
    )
    print(f"restore (latest): {report.duration_seconds:.1f} s (copy, WAL replay, promotion)")
    print(f"data at risk:     at most archive_timeout = {archive_timeout} on a quiet server")
    print(
        "commit→archived:  "
        + ", ".join(f"{delay:.1f} s" for delay in delays)
        + f" (max {max(delays):.1f} s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m loadtests.bench_backup", description=__doc__)
    parser.add_argument("--size-mb", type=int, default=1024, help="database size to reach (MiB)")
    parser.add_argument("--samples", type=int, default=1, help="commit-to-archive samples")
    parser.add_argument("--state-dir", type=Path, default=Path("/tmp/botstack-bench-backup"))
    parser.add_argument("--port-base", type=int, default=25930)
    parser.add_argument("--keep", action="store_true", help="leave the benchmark stack running")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
