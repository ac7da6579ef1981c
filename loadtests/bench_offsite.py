"""Benchmark of the offsite repository on a running local stack started with an object store
(`python -m infra.stack up --offsite-port-base N`): grow the database to --size-mb, take an
offsite full backup (time, peak memory of pgBackRest and weed mini), then write a row every
--write-interval seconds for --traffic-seconds while the stack's backup service ships WAL
(offsite lag sampled every 5 s: median and max), and run the disaster drill under that traffic
(RPO, RTO).

    python -m loadtests.bench_offsite --state-dir DIR [--size-mb 1024] [--traffic-seconds 300]
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import statistics
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import asyncpg

from infra.stack import LocalStack
from loadtests.bench_backup import context_for, load
from services.backup.disaster import disaster_drill
from services.backup.live import LiveServer
from services.backup.offsite import Offsite, load_state, offsite_lag
from services.backup.offsite_jobs import offsite_backup


def rss_mib(program: str, marker: str) -> float:
    """Resident memory of this stack's processes named program (marker: a path on their
    command line; other stacks may run the same programs), summed, in MiB."""
    result = subprocess.run(
        ["ps", "-C", program, "-o", "rss=,args="], capture_output=True, text=True, check=False
    )
    rows = [line.split(None, 1) for line in result.stdout.splitlines() if marker in line]
    return sum(int(row[0]) for row in rows) / 1024


async def sample_memory(peaks: dict[str, float], marker: str, stop: asyncio.Event) -> None:
    while not stop.is_set():
        for program in peaks:
            peaks[program] = max(peaks[program], rss_mib(program, marker))
        await asyncio.sleep(0.5)


async def traffic(dsn: str, interval: float, stop: asyncio.Event) -> int:
    connection = await asyncpg.connect(dsn)
    written = 0
    try:
        while not stop.is_set():
            await connection.execute(
                "INSERT INTO processed_updates (update_id) SELECT coalesce(max(update_id), 0) + 1 "
                "FROM processed_updates"
            )
            written += 1
            await asyncio.sleep(interval)
    finally:
        await connection.close()
    return written


async def run(args: argparse.Namespace) -> None:
    stack = LocalStack(args.state_dir)
    endpoints = stack.endpoints()
    environment = {}
    for line in stack.paths.env.read_text().splitlines():
        key, _, value = line.partition("=")
        environment[key] = "".join(shlex.split(value))
    context = context_for(stack, endpoints)
    offsite_values = {
        key.removeprefix("BACKUP_SERVICE_").lower(): value
        for key, value in environment.items()
        if key.startswith("BACKUP_SERVICE_OFFSITE_")
    }
    settings = context.settings.model_copy(
        update={k: Path(v) if k.endswith("_file") else v for k, v in offsite_values.items()}
    )
    context = replace(context, settings=settings, live=LiveServer(settings, context.live.role))
    size = await load(endpoints["postgres_dsn"], args.size_mb)
    print(f"database: {size / 2**20:.0f} MiB", flush=True)
    marker = str(stack.paths.root)
    idle = {program: rss_mib(program, marker) for program in ("weed", "pgbackrest")}

    peaks = {"weed": 0.0, "pgbackrest": 0.0}
    stop_sampling = asyncio.Event()
    sampler = asyncio.create_task(sample_memory(peaks, marker, stop_sampling))
    with context.exclusive():
        clock = time.monotonic()
        await offsite_backup(Offsite(settings, context.user), context.runs, "full")
        backup_seconds = time.monotonic() - clock
    stop_sampling.set()
    await sampler

    stop = asyncio.Event()
    writer = asyncio.create_task(traffic(endpoints["postgres_dsn"], args.write_interval, stop))
    lags: list[float] = []
    lag_bytes: list[int] = []
    deadline = time.monotonic() + args.traffic_seconds
    while time.monotonic() < deadline:
        lsn = await context.live.current_lsn()
        lag = offsite_lag(settings, load_state(settings), lsn, time.time())
        lags.append(lag.seconds)
        lag_bytes.append(lag.bytes or 0)
        await asyncio.sleep(5)
    with context.exclusive():
        result = await disaster_drill(settings, context.live, context.runs, context.user)
    stop.set()
    written = await writer
    await context.database.dispose()

    print(f"offsite full backup of {size / 2**20:.0f} MiB: {backup_seconds:.1f} s")
    print(
        f"memory before: weed mini {idle['weed']:.0f} MiB, pgBackRest {idle['pgbackrest']:.0f} MiB"
        " (it runs only per command);"
        f" peak during the backup: weed mini {peaks['weed']:.0f} MiB, "
        f"pgBackRest (all its processes) {peaks['pgbackrest']:.0f} MiB"
    )
    print(
        f"offsite lag under {written} writes in {args.traffic_seconds:.0f} s: median "
        f"{statistics.median(lags):.0f} s, max {max(lags):.0f} s; bytes median "
        f"{statistics.median(lag_bytes) / 2**20:.1f} MiB, max {max(lag_bytes) / 2**20:.1f} MiB"
    )
    if not result.succeeded:
        raise SystemExit(f"disaster drill failed: {result.error}")
    print(f"RPO {result.rpo_seconds:.1f} s")
    print(f"RTO {result.rto_seconds:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m loadtests.bench_offsite")
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--traffic-seconds", type=float, default=300)
    parser.add_argument("--write-interval", type=float, default=0.1)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
