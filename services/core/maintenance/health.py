"""The database's side of `botstack health`: PostgreSQL's recovery state and the archiver,
PgBouncer's pools, and the outbox's backlog. Each check returns a Check: ok, degraded (and
why), or unreachable."""

from __future__ import annotations

import asyncio
import csv
import io
import os
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any

import asyncpg
from pydantic import SecretStr


class Status(IntEnum):
    """Ordered by severity; the CLI's exit status is the worst one's value."""

    OK = 0
    DEGRADED = 1
    UNREACHABLE = 2


@dataclass(frozen=True)
class Check:
    component: str
    status: Status
    reason: str
    details: dict[str, Any]


# The outbox is behind when a due message has waited longer than this (the OutboxBehind alert's
# bound).
OUTBOX_LATE_SECONDS = 300.0


async def postgres(connection: asyncpg.Connection) -> list[Check]:
    row = await connection.fetchrow(
        "SELECT pg_is_in_recovery() AS in_recovery, version() AS version,"
        " (SELECT count(*) FROM pg_stat_activity) AS connections,"
        " current_setting('max_connections')::int AS max_connections"
    )
    archiver = await connection.fetchrow(
        "SELECT last_archived_wal, last_archived_time, last_failed_wal, last_failed_time,"
        " failed_count FROM pg_stat_archiver"
    )
    checks = []
    in_recovery = bool(row["in_recovery"])
    used = f"{row['connections']}/{row['max_connections']} connections"
    checks.append(
        Check(
            "postgresql",
            Status.DEGRADED if in_recovery else Status.OK,
            f"in recovery (read-only), {used}" if in_recovery else f"primary, {used}",
            {"in_recovery": in_recovery, **dict(row)},
        )
    )
    failed_at, archived_at = archiver["last_failed_time"], archiver["last_archived_time"]
    failing = failed_at is not None and (archived_at is None or failed_at > archived_at)
    if failing:
        reason = f"archiving {archiver['last_failed_wal']} failed at {failed_at:%Y-%m-%d %H:%M:%S}"
    elif archived_at is None:
        reason = "nothing archived yet"
    else:
        reason = f"last archived {archiver['last_archived_wal']} at {archived_at:%H:%M:%S}"
    checks.append(
        Check("wal-archiver", Status.DEGRADED if failing else Status.OK, reason, dict(archiver))
    )
    return checks


async def data_directory(connection: asyncpg.Connection) -> Path:
    """The server's data directory (its disk is one of the checks)."""
    return Path(await connection.fetchval("SELECT current_setting('data_directory')"))


async def outbox(connection: asyncpg.Connection) -> Check:
    row = await connection.fetchrow(
        "SELECT count(*) AS due, extract(epoch FROM now() - min(available_at))::float8 AS oldest"
        " FROM outbox WHERE status = 'pending' AND available_at <= now()"
    )
    due, oldest = int(row["due"]), row["oldest"]
    late = oldest is not None and oldest > OUTBOX_LATE_SECONDS
    reason = f"{due} due" + (f", oldest waiting {oldest:.0f} s" if oldest is not None else "")
    return Check(
        "outbox", Status.DEGRADED if late else Status.OK, reason, {"due": due, "oldest_s": oldest}
    )


async def pgbouncer(
    psql: Path, host: str, port: int, user: str, password: SecretStr, database: str
) -> Check:
    """SHOW POOLS on PgBouncer's admin console, through psql: the console speaks only the
    simple query protocol, which asyncpg does not use for queries that return rows."""
    process = await asyncio.create_subprocess_exec(
        str(psql),
        f"--host={host}",
        f"--port={port}",
        f"--username={user}",
        "--dbname=pgbouncer",
        "--no-psqlrc",
        "--no-password",
        "--csv",
        "--command=SHOW POOLS",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PGPASSWORD": password.get_secret_value(), "PGCONNECT_TIMEOUT": "5"},
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        reason = " ".join(err.decode(errors="replace").split()) or "psql failed"
        return Check("pgbouncer", Status.UNREACHABLE, reason, {})
    pools = [
        row for row in csv.DictReader(io.StringIO(out.decode())) if row["database"] == database
    ]
    active = sum(int(row["cl_active"]) for row in pools)
    waiting = sum(int(row["cl_waiting"]) for row in pools)
    longest = max((int(row["maxwait"]) for row in pools), default=0)
    reason = f"{active} active, {waiting} waiting clients (longest wait {longest} s)"
    return Check(
        "pgbouncer",
        Status.DEGRADED if longest >= 1 else Status.OK,
        reason,
        {"active": active, "waiting": waiting, "maxwait_s": longest},
    )
