"""Benchmark of the bot's per-update transaction through PgBouncer, against pgbench.

N concurrent tasks run the transaction through the core's unit of work (record the update id,
upsert the user, log the message); then pgbench runs the same SQL through the same PgBouncer
with the same number of clients. The last line is `ratio: X`, our tx/s over pgbench's.

    python -m loadtests.bench_db [--tasks 32] [--seconds 8] [--rounds 3] [--mode modern|legacy]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from infra.stack import LocalStack
from services.core.db import Database
from services.core.repositories.users import LOG_MESSAGE, RECORD_UPDATE, UPSERT_USER
from services.core.schema import Direction
from services.core.settings import DatabaseSettings

REPO = Path(__file__).resolve().parent.parent
# Telegram ids are drawn from this many users, so upserts mix inserts and updates.
USERS = 100_000


def pgbench_sql(query: str, *values: str) -> str:
    """query with its $1, $2, ... replaced by pgbench expressions."""
    return re.sub(r"\$(\d+)", lambda match: values[int(match[1]) - 1], query)


BENCH_NAME = "'bench ' || :telegram_id"
# The same statements the repositories send, with pgbench variables for the parameters.
PGBENCH_SCRIPT = f"""\\set update_id random(1, 9000000000000000000)
\\set telegram_id random(1, {USERS})
BEGIN;
{pgbench_sql(RECORD_UPDATE, ":update_id")};
{pgbench_sql(UPSERT_USER, ":telegram_id", "NULL", BENCH_NAME, "NULL", "'en'")} \\gset
{pgbench_sql(LOG_MESSAGE, ":id", "'in'", "'hello from update ' || :update_id", "NULL", "'{}'")};
COMMIT;
"""


@dataclass
class Result:
    transactions: int
    seconds: float
    latencies_ms: list[float]

    @property
    def tps(self) -> float:
        return self.transactions / self.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def line(self, name: str) -> str:
        return (
            f"{name:<13} {self.tps:6.0f} tx/s  p50 {self.percentile(0.5):6.2f} ms  "
            f"p99 {self.percentile(0.99):6.2f} ms  ({self.transactions} tx)"
        )


def settings_for(dsn: str, mode: str, tasks: int) -> DatabaseSettings:
    url = urlsplit(dsn)
    # One pooled connection per task: the benchmark measures the layer, not pool queueing.
    return DatabaseSettings(
        host=url.hostname or "",
        port=url.port or 0,
        user=url.username or "",
        password=SecretStr(url.password or ""),
        name=url.path.lstrip("/"),
        prepared_statements=mode == "modern",
        pool_size=tasks,
        max_overflow=0,
    )


async def run_ours(settings: DatabaseSettings, tasks: int, seconds: float) -> Result:
    db = Database(settings, CollectorRegistry())
    latencies: list[float] = []
    update_ids = iter(range(random.randrange(10**15, 10**16), 10**17))

    async def one_update() -> None:
        update_id = next(update_ids)
        telegram_id = random.randint(1, USERS)
        async with db.unit_of_work() as uow:
            if await uow.updates.record(update_id):
                user_id = await uow.users.upsert(
                    telegram_id, first_name=f"bench {telegram_id}", language_code="en"
                )
                await uow.messages.log(user_id, Direction.IN, f"hello from update {update_id}")

    async def worker(deadline: float) -> None:
        while (started := time.perf_counter()) < deadline:
            await one_update()
            latencies.append((time.perf_counter() - started) * 1000)

    try:
        await asyncio.gather(*(one_update() for _ in range(tasks)))  # warm the pool and caches
        began = time.perf_counter()
        await asyncio.gather(*(worker(began + seconds) for _ in range(tasks)))
        elapsed = time.perf_counter() - began
    finally:
        await db.dispose()
    return Result(len(latencies), elapsed, latencies)


def run_pgbench(dsn: str, tasks: int, seconds: float) -> Result:
    pgbench = shutil.which("pgbench") or "/usr/lib/postgresql/15/bin/pgbench"
    url = urlsplit(dsn)
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "update.sql"
        script.write_text(PGBENCH_SCRIPT)
        command = [
            pgbench,
            "--no-vacuum",
            f"--client={tasks}",
            "--jobs=2",
            f"--time={int(seconds)}",
            # Not --protocol=prepared: pgbench prepares with a blocking call, so once its clients
            # outnumber PgBouncer's server connections one waiting client stalls its whole
            # thread, including clients holding servers mid-transaction (seen here: every
            # client stuck until query_wait_timeout).
            "--protocol=extended",
            f"--file={script}",
            "--log",
            f"--log-prefix={tmp}/log",
            f"--host={url.hostname}",
            f"--port={url.port}",
            f"--username={url.username}",
            url.path.lstrip("/"),
        ]
        env = {"PGPASSWORD": url.password or "", "PATH": "/usr/bin:/bin"}
        run = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if run.returncode != 0:
            raise SystemExit(f"pgbench failed:\n{run.stderr}")
        # Per-transaction log lines: client_id transaction_no latency_us script_no epoch us
        latencies = [
            int(line.split()[2]) / 1000
            for log in Path(tmp).glob("log*")
            for line in log.read_text().splitlines()
        ]
    return Result(len(latencies), seconds, latencies)


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Benchmark the bot's per-update transaction through PgBouncer against "
        "pgbench running the same SQL. Starts the local stack if it is not running."
    )
    parser.add_argument(
        "--tasks", type=int, default=32, help="concurrent tasks and pgbench clients"
    )
    parser.add_argument("--seconds", type=float, default=8, help="duration of each run")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="alternating runs of each; the ratio is of the medians (the machine is shared)",
    )
    parser.add_argument(
        "--mode",
        choices=("modern", "legacy"),
        default="modern",
        help="modern: PgBouncer >= 1.21, statement caches on; legacy: PgBouncer 1.18, caches off",
    )
    parser.add_argument("--state-dir", type=Path, default=REPO / ".stack")
    args = parser.parse_args()

    endpoints = LocalStack(args.state_dir).up()
    dsn = endpoints["pgbouncer_dsn"]
    if args.mode == "legacy":
        dsn = endpoints.get("pgbouncer_legacy_dsn", dsn)
    port = urlsplit(dsn).port
    print(
        f"mode {args.mode}, {args.tasks} tasks, {args.rounds} rounds of {args.seconds:.0f} s, "
        f"PgBouncer :{port}"
    )
    settings = settings_for(dsn, args.mode, args.tasks)
    ours: list[float] = []
    theirs: list[float] = []
    for round_ in range(1, args.rounds + 1):
        result = asyncio.run(run_ours(settings, args.tasks, args.seconds))
        print(result.line(f"#{round_} botstack"), flush=True)
        ours.append(result.tps)
        result = run_pgbench(dsn, args.tasks, args.seconds)
        print(result.line(f"#{round_} pgbench"), flush=True)
        theirs.append(result.tps)
    print(f"median: botstack {median(ours):.0f} tx/s, pgbench {median(theirs):.0f} tx/s")
    print(f"ratio: {median(ours) / median(theirs):.2f}")


if __name__ == "__main__":
    main()
