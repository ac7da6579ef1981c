"""CPU per update of the project's bot against a bare aiogram bot, measured in the same run.

The local stack (PostgreSQL, PgBouncer) is started if it is not running; the benchmark starts
its own Telegram Bot API stand-in (`python -m services.telegram_api`), ONE project bot
(`python -m services.bot`, webhook mode, throttling lifted) and the bare aiogram bot
(`python -m loadtests.bare_bot`: no database, one sendMessage per update), on free ports.

A round queues N updates while no webhook is set (a /start and a plain text from each of N/2
new users, so one chat's ordering does not serialize them), then points the webhook at one
of the two bots and starts the clock: the stand-in POSTs the updates, the bot handles each
(the project's bot in its transaction through PgBouncer) and sends its reply back to the
stand-in. The clock stops at the last of the N replies, read from the stand-in's call log.
Rounds alternate between the two bots, so both meet the same noise of a shared machine.

Printed per round: updates/s, the webhook handling latency p50/p99 (interpolated in the
bot's histogram buckets, as Prometheus' histogram_quantile does) and the CPU each process used;
then the medians of the rounds for each bot, the project bot's peak RSS and, as the last line,
the ratio of the two bots' CPU per update (medians):

    ratio to the bare aiogram bot: X.XX

    python -m loadtests.bench_bot [--updates 3000] [--rounds 3] [--max-connections 40]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from infra.stack import DEFAULT_PORT_BASE, LocalStack
from infra.stack_state import Layout
from loadtests.procfs import children, cpu_seconds

REPO = Path(__file__).resolve().parent.parent
SECRET = "bench-bot-secret"
WEBHOOK_PATH = "/telegram/webhook"
# Importing aiogram takes seconds of CPU; on a busy shared machine much longer.
STARTUP_SECONDS = 180
# A round fails when no update is answered for this long.
STALL_SECONDS = 60
# Seconds between two reads of the bot's /metrics while a round runs, and between two
# progress lines. Each read costs the bot a scrape, which Prometheus makes every 15 s: read
# every half second, the project bot's (its registry is far larger than the bare bot's) was
# 4% of its CPU in the round, a cost neither bot has per update. The round's time is read from
# the stand-in's replies, so a later read does not lengthen it.
POLL_SECONDS = 2.0
PROGRESS_SECONDS = 2.0
# Concurrent HTTP requests that queue the updates (not measured).
PUSHERS = 16
BARE = "bare"
BOT = "bot"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all cores since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return sum(values) - idle, sum(values)


@dataclass
class Target:
    """One of the two bots: where its webhook and its metrics are, and its process."""

    name: str
    pid: int
    webhook_url: str
    metrics_url: str


@dataclass
class Processes:
    """The processes on the path besides the bot, whose CPU each round reports."""

    stand_in: int
    pgbouncer: int | None
    postmaster: int | None

    def cpu(self, bot: int) -> dict[str, float]:
        postgres = 0.0
        if self.postmaster is not None:
            postgres = sum(
                cpu_seconds(pid) for pid in [self.postmaster, *children(self.postmaster)]
            )
        return {
            "bot": cpu_seconds(bot),
            "stand-in": cpu_seconds(self.stand_in),
            "pgbouncer": cpu_seconds(self.pgbouncer) if self.pgbouncer else 0.0,
            # Backends come and go; those that ended in the round are not counted.
            "postgres": postgres,
        }


def _pid_from(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def start(
    command: list[str], env: Mapping[str, str], log: Path, url: str
) -> subprocess.Popen[bytes]:
    with log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, *command],
            cwd=REPO,
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        try:
            with urllib.request.urlopen(url + "/health/live", timeout=1):
                return process
        except OSError:  # urllib's URLError included
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.terminate()
            raise SystemExit(f"{' '.join(command)} did not start; see {log}")
        time.sleep(0.2)


def stop(process: subprocess.Popen[bytes]) -> int:
    process.terminate()
    try:
        return process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


@dataclass
class Metrics:
    """What a bot's /metrics says: updates by outcome (the project's bot only) and the
    cumulative buckets of its webhook latency histogram for messages."""

    outcomes: dict[str, float]
    buckets: dict[float, float]

    def __sub__(self, before: Metrics) -> Metrics:
        return Metrics(
            {k: v - before.outcomes.get(k, 0.0) for k, v in self.outcomes.items()},
            {le: n - before.buckets.get(le, 0.0) for le, n in self.buckets.items()},
        )

    @property
    def answered(self) -> float:
        """Webhook requests answered (the +Inf bucket)."""
        return self.buckets.get(float("inf"), 0.0)

    def quantile(self, q: float) -> float:
        """histogram_quantile: linear within the bucket the rank falls in."""
        bounds = sorted(self.buckets)
        total = self.buckets[bounds[-1]]
        rank, lower, below = q * total, 0.0, 0.0
        for bound in bounds:
            count = self.buckets[bound]
            if count >= rank:
                if bound == float("inf"):
                    return lower
                inside = count - below
                return lower + (bound - lower) * ((rank - below) / inside if inside else 0.0)
            lower, below = bound, count
        return lower


async def read_metrics(http: aiohttp.ClientSession, metrics_url: str) -> Metrics:
    async with http.get(metrics_url + "/metrics") as response:
        text = await response.text()
    outcomes: dict[str, float] = {}
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "bot_updates_total":
                outcome = labels["outcome"]
                outcomes[outcome] = outcomes.get(outcome, 0.0) + sample.value
            elif (
                sample.name == "bot_update_duration_seconds_bucket" and labels["type"] == "message"
            ):
                buckets[float(labels["le"])] = sample.value
    return Metrics(outcomes, buckets)


class StandIn:
    """The stand-in's control API (its HTTP face, as a developer or a load test uses it)."""

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self._http = http
        self._url = url

    async def _call(self, verb: str, path: str, body: Any = None) -> Any:
        async with self._http.request(verb, self._url + path, json=body) as response:
            answer = await response.json()
        if not answer.get("ok"):
            raise SystemExit(f"stand-in {verb} {path}: {answer.get('description')}")
        return answer["result"]

    async def push(self, updates: list[dict[str, Any]]) -> None:
        queue = iter(updates)

        async def pusher() -> None:
            for update in queue:
                await self._call("POST", "/__control/updates", update)

        await asyncio.gather(*(pusher() for _ in range(PUSHERS)))

    async def set_webhook(self, url: str, max_connections: int) -> None:
        body = {"url": url, "secret_token": SECRET, "max_connections": max_connections}
        await self._call("POST", "/__control/webhook", body)

    async def delete_webhook(self) -> None:
        await self._call("DELETE", "/__control/webhook")

    async def replies_since(self, since: float) -> list[float]:
        """When each sendMessage made since `since` was answered ok."""
        calls = await self._call("GET", "/__control/calls?method=sendMessage")
        return [call["at"] for call in calls if call["ok"] and call["at"] >= since]


@dataclass
class Round:
    bot: str
    updates: int
    seconds: float
    metrics: Metrics
    cpu: dict[str, float]
    # Share of all cores busy (every process, other users' too) from the webhook's setting
    # until the round's replies were read.
    machine: float

    @property
    def rate(self) -> float:
        return self.updates / self.seconds

    def ms_per_update(self, process: str = "bot") -> float:
        return 1000 * self.cpu[process] / self.updates

    def line(self, name: str) -> str:
        # Percent of one core over the round, and CPU milliseconds per update.
        cpu = ", ".join(
            f"{k} {100 * v / self.seconds:.0f}% ({self.ms_per_update(k):.2f} ms/update)"
            for k, v in self.cpu.items()
        )
        return (
            f"{name:<9} {self.updates} updates in {self.seconds:5.2f} s = {self.rate:6.1f}/s, "
            f"latency p50 {1000 * self.metrics.quantile(0.5):5.1f} ms "
            f"p99 {1000 * self.metrics.quantile(0.99):6.1f} ms\n"
            f"          CPU: {cpu}; all cores {100 * self.machine:.0f}% busy"
        )


class Bench:
    def __init__(
        self, http: aiohttp.ClientSession, stand_in: StandIn, processes: Processes
    ) -> None:
        self._http = http
        self._stand_in = stand_in
        self._processes = processes
        # New users each round (one seen before would only be updated instead of inserted);
        # the stand-in gives update ids no earlier run used.
        self._next_user = 6_000_000_000 + time.time_ns() // 1000 % 10**9

    def _updates(self, count: int) -> list[dict[str, Any]]:
        updates = []
        for n in range(count):
            user = self._next_user + n // 2
            text = "/start" if n % 2 == 0 else "hello, what can you do?"
            message: dict[str, Any] = {
                "message_id": 1 + n % 2,
                "date": int(time.time()),
                "chat": {"id": user, "type": "private", "first_name": "Bench"},
                "from": {"id": user, "is_bot": False, "first_name": "Bench"},
                "text": text,
            }
            if text.startswith("/"):
                message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text)}]
            updates.append({"message": message})
        self._next_user += (count + 1) // 2
        return updates

    async def round(self, target: Target, name: str, count: int, max_connections: int) -> Round:
        await self._stand_in.delete_webhook()
        await self._stand_in.push(self._updates(count))
        before = await read_metrics(self._http, target.metrics_url)
        cpu_before = self._processes.cpu(target.pid)
        busy_before = machine_busy()
        started = time.time()
        await self._stand_in.set_webhook(target.webhook_url, max_connections)
        replies = await self._wait(target, name, count, before, started)
        seconds = max(replies) - started
        cpu_after = self._processes.cpu(target.pid)
        busy_after = machine_busy()
        metrics = await read_metrics(self._http, target.metrics_url) - before
        not_handled = {k: v for k, v in metrics.outcomes.items() if k != "handled" and v}
        if not_handled:
            print(f"  note: outcomes other than handled: {not_handled}", flush=True)
        busy = (busy_after[0] - busy_before[0]) / max(1, busy_after[1] - busy_before[1])
        cpu = {k: cpu_after[k] - cpu_before[k] for k in cpu_after}
        return Round(target.name, count, seconds, metrics, cpu, busy)

    async def _wait(
        self, target: Target, name: str, count: int, before: Metrics, started: float
    ) -> list[float]:
        """Until the bot has answered `count` more webhook requests and the stand-in has
        `count` replies; returns when each reply arrived."""
        last_progress, last_done, last_shown = time.monotonic(), -1.0, 0.0
        while True:
            await asyncio.sleep(POLL_SECONDS)
            now = await read_metrics(self._http, target.metrics_url) - before
            done = now.answered
            if done >= count:
                replies = await self._stand_in.replies_since(started)
                if len(replies) >= count:
                    return replies
                done = len(replies)
            if done != last_done:
                last_progress, last_done = time.monotonic(), done
            elif time.monotonic() - last_progress > STALL_SECONDS:
                raise SystemExit(f"{name}: stalled at {done:.0f}/{count}: {now.outcomes}")
            if time.monotonic() - last_shown >= PROGRESS_SECONDS:
                last_shown = time.monotonic()
                elapsed = time.time() - started
                print(f"  {name}: {done:.0f}/{count} after {elapsed:.1f} s", flush=True)


def database_env(dsn: str) -> dict[str, str]:
    url = urlsplit(dsn)
    return {
        "DB_HOST": str(url.hostname),
        "DB_PORT": str(url.port),
        "DB_USER": str(url.username),
        "DB_PASSWORD": str(url.password),
        "DB_NAME": url.path.lstrip("/"),
        "DB_PREPARED_STATEMENTS": "true",  # the stack's modern PgBouncer
    }


def summary(rounds: list[Round], bot: str) -> tuple[str, float]:
    """The median round's line for one bot, and its median CPU per update."""
    mine = [r for r in rounds if r.bot == bot]
    middle = sorted(mine, key=lambda r: r.rate)[len(mine) // 2]
    per_process = ", ".join(
        f"{process} {median(r.ms_per_update(process) for r in mine):.2f}" for process in mine[0].cpu
    )
    cpu = median(r.ms_per_update() for r in mine)
    line = (
        f"{median(r.rate for r in mine):6.1f} updates/s, "
        f"webhook latency p50 {1000 * middle.metrics.quantile(0.5):.1f} ms "
        f"p99 {1000 * middle.metrics.quantile(0.99):.1f} ms, "
        f"CPU per update {cpu:.2f} ms (ms/update by process: {per_process})"
    )
    return line, cpu


async def run(
    args: argparse.Namespace, processes: Processes, bot: Target, bare: Target, stand_in_url: str
) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
        bench = Bench(http, StandIn(http, stand_in_url), processes)
        for target in (bare, bot):
            warm = await bench.round(
                target, f"{target.name} warm", min(args.updates, 500), args.max_connections
            )
            print(warm.line(f"{target.name} warm"), flush=True)
        rounds: list[Round] = []
        for n in range(1, args.rounds + 1):
            # Alternating, so a burst of other work on the machine hits both alike.
            for target in (bare, bot) if n % 2 else (bot, bare):
                name = f"{target.name} #{n}"
                result = await bench.round(target, name, args.updates, args.max_connections)
                print(result.line(name), flush=True)
                rounds.append(result)
        compared = []
        for connections in args.compare:
            name = f"mc={connections}"
            result = await bench.round(bot, name, args.updates, connections)
            print(result.line(name), flush=True)
            compared.append((connections, result.rate))
    print(
        f"median of {args.rounds} rounds of {args.updates} updates each, "
        f"max_connections {args.max_connections}:"
    )
    bare_line, bare_cpu = summary(rounds, BARE)
    bot_line, bot_cpu = summary(rounds, BOT)
    print(f"  bare aiogram bot: {bare_line}")
    print(f"  project bot:      {bot_line}")
    for connections, rate in compared:
        print(f"project bot at max_connections {connections}: {rate:.1f} updates/s (one round)")
    print(f"project bot peak RSS: {peak_rss_mib(bot.pid):.0f} MiB")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print(f"ratio to the bare aiogram bot: {bot_cpu / bare_cpu:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Measure the project bot's CPU per update against a bare aiogram bot in "
        "the same run, and the updates per second of each through the whole path: stand-in "
        "-> webhook -> bot (-> PgBouncer -> PostgreSQL) -> replies. Starts the local stack "
        "if it is not running, and its own stand-in and bots."
    )
    parser.add_argument("--updates", type=int, default=3000, help="updates per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per bot (the median)")
    parser.add_argument(
        "--max-connections",
        type=int,
        default=40,
        help="the webhook's max_connections (Telegram's default 40)",
    )
    parser.add_argument(
        "--compare",
        type=lambda value: [int(v) for v in value.split(",") if v],
        default=[],
        help="other max_connections for one round of the project bot each, comma separated "
        "(e.g. 10,100: whether the stand-in's delivery concurrency is the limit)",
    )
    parser.add_argument("--state-dir", type=Path, default=REPO / ".stack")
    parser.add_argument(
        "--port-base", type=int, default=DEFAULT_PORT_BASE, help="as `infra.stack up`"
    )
    args = parser.parse_args()

    stack = LocalStack(args.state_dir, port_base=args.port_base)
    endpoints = stack.up()
    layout = Layout(stack.state_dir)
    stand_in_port, bot_port, metrics_port, bare_port = (free_port() for _ in range(4))
    stand_in_url = f"http://127.0.0.1:{stand_in_port}"
    logs = Path(tempfile.mkdtemp(prefix="bench-bot-"))
    stand_in = start(
        ["-m", "services.telegram_api"],
        {
            "TELEGRAM_API_PORT": str(stand_in_port),
            # The whole of a round's replies stay in the log the clock is read from.
            "TELEGRAM_API_CALL_LOG_SIZE": str(2 * args.updates + 1000),
        },
        logs / "telegram-api.log",
        stand_in_url,
    )
    started: list[subprocess.Popen[bytes]] = []
    try:
        bot_url, metrics_url = f"http://127.0.0.1:{bot_port}", f"http://127.0.0.1:{metrics_port}"
        started.append(
            start(
                ["-m", "services.bot"],
                {
                    **database_env(endpoints["pgbouncer_dsn"]),
                    "BOT_API_URL": stand_in_url,
                    "BOT_WEBHOOK_PORT": str(bot_port),
                    "BOT_METRICS_PORT": str(metrics_port),
                    "BOT_WEBHOOK_SECRET": SECRET,
                    # The benchmark sets the webhook itself, with its max_connections.
                    "BOT_SET_WEBHOOK": "false",
                    # Measured is the path, not the per-user limiter.
                    "BOT_THROTTLE_PER_MINUTE": str(10**9),
                    "BOT_THROTTLE_BURST": str(10**9),
                },
                logs / "bot.log",
                metrics_url,
            )
        )
        bot = Target(BOT, started[-1].pid, bot_url + WEBHOOK_PATH, metrics_url)
        bare_url = f"http://127.0.0.1:{bare_port}"
        started.append(
            start(
                ["-m", "loadtests.bare_bot"],
                {
                    "BOT_API_URL": stand_in_url,
                    "BOT_WEBHOOK_PORT": str(bare_port),
                    "BOT_WEBHOOK_SECRET": SECRET,
                },
                logs / "bare-bot.log",
                bare_url,
            )
        )
        bare = Target(BARE, started[-1].pid, bare_url + WEBHOOK_PATH, bare_url)
        processes = Processes(
            stand_in.pid,
            _pid_from(layout.pidfile("pgbouncer")),
            _pid_from(layout.pgdata / "postmaster.pid"),
        )
        print(
            f"project bot pid {bot.pid} at {bot_url}, bare aiogram bot pid {bare.pid} at "
            f"{bare_url}, stand-in pid {stand_in.pid} at {stand_in_url}, PgBouncer "
            f"{urlsplit(endpoints['pgbouncer_dsn']).port}; logs in {logs}; "
            f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores",
            flush=True,
        )
        asyncio.run(run(args, processes, bot, bare, stand_in_url))
    finally:
        for process in reversed(started):
            stop(process)
        if stop(stand_in) != 0:
            print(f"the stand-in saw invalid Bot API calls; see {logs / 'telegram-api.log'}")


if __name__ == "__main__":
    main()
