"""Benchmark of the admin API on a realistic data set.

Seeds 100,000 users (once; a rerun finds them) with three messages each, a payment for every
third user and a ticket for every fiftieth, all spread over the last 90 days; starts the admin
API as its own process (uvicorn, its own pool, through PgBouncer) with the rate limit lifted,
then sends each scenario's requests from concurrent clients and prints p50 and p99.

    python -m loadtests.bench_admin [--users 100000] [--requests 300] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx

from infra.stack import LocalStack
from services.admin_api.auth import issue_key
from services.core.db import Database
from services.core.schema import Role, Staff
from services.core.settings import DatabaseSettings

REPO = Path(__file__).resolve().parent.parent
# Seeded users have Telegram ids above this, so they are recognisable and seeded only once.
TELEGRAM_BASE = 5_000_000_000
STARTUP_SECONDS = 30

SEED = [
    "INSERT INTO users (telegram_id, username, first_name, last_name, language_code, created_at)"
    f" SELECT {TELEGRAM_BASE} + n, 'bench_' || n, 'First' || n, 'Last' || (n % 5000), 'en',"
    " now() - (n % 90) * interval '1 day' - (n % 1440) * interval '1 minute'"
    " FROM generate_series(1, $1) AS n",
    "INSERT INTO conversation_messages (user_id, direction, text, created_at)"
    " SELECT u.id, CASE WHEN k = 2 THEN 'out' ELSE 'in' END, 'message ' || k || ' from ' || u.id,"
    " now() - ((u.id + k) % 30) * interval '1 day'"
    f" FROM users u CROSS JOIN generate_series(1, 3) AS k WHERE u.telegram_id > {TELEGRAM_BASE}",
    "INSERT INTO payments (user_id, telegram_payment_charge_id, amount, credits, created_at)"
    " SELECT id, 'bench-' || id, 10 + id % 90, 10, now() - (id % 30) * interval '1 day'"
    f" FROM users WHERE telegram_id > {TELEGRAM_BASE} AND id % 3 = 0",
    "INSERT INTO tickets (user_id, subject, status, created_at, first_response_at, resolved_at)"
    " SELECT id, 'help', CASE WHEN id % 4 = 0 THEN 'open' ELSE 'resolved' END,"
    " now() - (id % 30) * interval '1 day',"
    " now() - (id % 30) * interval '1 day' + (id % 240) * interval '1 minute',"
    " CASE WHEN id % 4 = 0 THEN NULL ELSE now() - (id % 30) * interval '1 day'"
    " + (id % 48) * interval '1 hour' + interval '4 hours' END"
    f" FROM users WHERE telegram_id > {TELEGRAM_BASE} AND id % 50 = 0",
    "ANALYZE",
]


async def seed(postgres_dsn: str, users: int) -> None:
    connection = await asyncpg.connect(postgres_dsn)
    try:
        present = await connection.fetchval(
            f"SELECT count(*) FROM users WHERE telegram_id > {TELEGRAM_BASE}"
        )
        if present >= users:
            print(f"data set present: {present} users")
            return
        if present:
            raise SystemExit(
                f"{present} of {users} bench users exist: run `python -m infra.stack down "
                "--purge` for a clean database, or pass --users accordingly"
            )
        started = time.perf_counter()
        async with connection.transaction():
            for statement in SEED[:-1]:
                await connection.execute(statement, *([users] if "$1" in statement else []))
        await connection.execute(SEED[-1])
        print(f"seeded {users} users in {time.perf_counter() - started:.1f} s")
    finally:
        await connection.close()


def database_settings(dsn: str) -> DatabaseSettings:
    url = urlsplit(dsn)
    return DatabaseSettings(
        host=url.hostname or "127.0.0.1",
        port=url.port or 5432,
        user=url.username or "",
        password=url.password or "",
        name=url.path.lstrip("/"),
    )


async def admin_key(settings: DatabaseSettings) -> str:
    database = Database(settings)
    try:
        async with database.unit_of_work() as uow:
            staff = Staff(name=f"bench-{os.getpid()}-{time.time_ns()}", role=Role.ADMIN)
            uow.session.add(staff)
            await uow.session.flush()
            assert staff.id is not None
            return (await issue_key(uow, staff.id, "bench")).key
    finally:
        await database.dispose()


def start_server(dsn: str) -> tuple[subprocess.Popen[bytes], str]:
    url = urlsplit(dsn)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = os.environ | {
        "DB_HOST": str(url.hostname),
        "DB_PORT": str(url.port),
        "DB_USER": str(url.username),
        "DB_PASSWORD": str(url.password),
        "DB_NAME": url.path.lstrip("/"),
        "ADMIN_API_PORT": str(port),
        # The benchmark measures the service, not the per-key limiter.
        "ADMIN_API_RATE_LIMIT_PER_MINUTE": str(10**9),
        "ADMIN_API_RATE_BURST": str(10**9),
        "APP_LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen([sys.executable, "-m", "services.admin_api"], cwd=REPO, env=env)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        try:
            if httpx.get(f"{base}/health/ready", timeout=1).status_code == 200:
                return process, base
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.terminate()
            raise SystemExit("the admin API did not start")
        time.sleep(0.2)


def scenarios(users: int) -> dict[str, Callable[[], str]]:
    def n() -> int:
        return random.randint(1, users)

    return {
        "list, first page": lambda: "/users?limit=50",
        "list, filtered": lambda: "/users?limit=50&is_active=true&is_blocked=false",
        "search username": lambda: f"/users?q=bench_{n()}",
        "search name": lambda: f"/users?q=Last{random.randint(1000, 4999)}",
        "search telegram id": lambda: f"/users?q={TELEGRAM_BASE + n()}",
        "user detail": lambda: f"/users/{n()}",
        "payments list": lambda: "/payments?limit=50",
        "analytics revenue 30d": lambda: "/analytics/revenue?days=30",
        "analytics users 30d": lambda: "/analytics/users?days=30",
        "analytics top users": lambda: "/analytics/top-users?days=30",
        "analytics tickets": lambda: "/analytics/tickets?days=30",
    }


async def measure(
    client: httpx.AsyncClient, path: Callable[[], str], requests: int, concurrency: int
) -> list[float]:
    latencies: list[float] = []
    remaining = requests

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            response = await client.get(path())
            latencies.append((time.perf_counter() - started) * 1000)
            if response.status_code not in (200, 404):
                raise SystemExit(f"{response.status_code} from {response.url}: {response.text}")

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return sorted(latencies)


def percentile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(base: str, key: str, users: int, requests: int, concurrency: int) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as client:
        for name, path in scenarios(users).items():
            await measure(client, path, concurrency * 2, concurrency)  # warm the caches
            latencies = await measure(client, path, requests, concurrency)
            print(
                f"{name:<24} p50 {percentile(latencies, 0.5):7.1f} ms"
                f"  p99 {percentile(latencies, 0.99):7.1f} ms  ({len(latencies)} requests)",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Seed a data set and measure the admin API's list, search and analytics "
        "endpoints. Starts the local stack if it is not running."
    )
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=300, help="per scenario")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent clients")
    parser.add_argument("--state-dir", type=Path, default=REPO / ".stack")
    parser.add_argument("--port-base", type=int, default=25430, help="as `infra.stack up`")
    args = parser.parse_args()

    endpoints = LocalStack(args.state_dir, port_base=args.port_base).up()
    asyncio.run(seed(endpoints["postgres_dsn"], args.users))
    key = asyncio.run(admin_key(database_settings(endpoints["pgbouncer_dsn"])))
    process, base = start_server(endpoints["pgbouncer_dsn"])
    try:
        print(f"admin API at {base}, {args.concurrency} concurrent clients")
        asyncio.run(run(base, key, args.users, args.requests, args.concurrency))
    finally:
        process.terminate()
        process.wait(timeout=15)


if __name__ == "__main__":
    main()
