"""The alerts in the real Prometheus of the test stack (scraping every second), against the real
services, exporters and Alertmanager: every target up; at idle nothing pending or firing and
every alert's expression a number; each required alert fires on a real induced fault and
resolves when the fault ends; Grafana's rules (query, reduce, threshold) give the verdict
Prometheus gives; an alert reaches the staff chat of the local Telegram Bot API. The outage
comes first: the pool fault's cancelled statements are errors too. The long idle watch comes
last, after every fault has ended.

How long each alert took to fire is written to <state>/alert-timings.json."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from prometheus_client import CollectorRegistry

from infra.monitoring import DEFAULT_STAFF_CHAT_ID
from infra.observability.alerts import ALERTS, Alert
from infra.observability.generate import grafana_rule
from infra.observability.scrape import JOBS
from infra.pgbouncer_server import PgBouncerServer
from infra.stack import LocalStack
from infra.stack_state import StackState
from services.admin_api.auth import issue_key
from services.core.db import Database
from services.core.os_user import ServiceUser
from services.core.schema import Role, Staff
from tests.conftest import database_settings

BY_NAME = {alert.name: alert for alert in ALERTS}
LabelSet = frozenset[tuple[str, str]]


class Prometheus:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        params = {"query": expr, **({"time": str(at)} if at is not None else {})}
        reply = await self.http.get("/api/v1/query", params=params)
        reply.raise_for_status()
        result: list[dict[str, Any]] = reply.json()["data"]["result"]
        return result

    async def alerts(self) -> dict[str, str]:
        """alertname -> state (pending or firing) of the alerts Prometheus holds now."""
        reply = await self.http.get("/api/v1/alerts")
        states: dict[str, str] = {}
        for alert in reply.json()["data"]["alerts"]:
            name = alert["labels"]["alertname"]
            if states.get(name) != "firing":
                states[name] = alert["state"]
        return states


@pytest.fixture
async def prometheus(endpoints: dict[str, str]) -> AsyncIterator[Prometheus]:
    async with httpx.AsyncClient(base_url=endpoints["prometheus_url"], timeout=10) as http:
        yield Prometheus(http)


async def eventually(check: Callable[[], Awaitable[bool]], within: float, what: str) -> float:
    """Seconds until check() holds; fails the test after `within` seconds."""
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < within, f"{what}: not within {within:.0f} s"
        await asyncio.sleep(0.5)
    return time.monotonic() - started


async def _all_up(prometheus: Prometheus) -> bool:
    up = await prometheus.query("up")
    jobs = {series["metric"]["job"]: series["value"][1] for series in up}
    return jobs.keys() == {job.name for job in JOBS} and set(jobs.values()) == {"1"}


def _labels(series: dict[str, Any]) -> LabelSet:
    return frozenset(series["metric"].items())


async def prometheus_verdict(prometheus: Prometheus, alert: Alert, at: float) -> set[LabelSet]:
    return {_labels(series) for series in await prometheus.query(alert.condition, at)}


async def grafana_verdict(prometheus: Prometheus, alert: Alert, at: float) -> set[LabelSet]:
    """The Grafana rule as Grafana evaluates it: query A, reduce B (last, NaN dropped),
    threshold C, one alert instance per series."""
    rule = grafana_rule(alert)
    models = {query["refId"]: query["model"] for query in rule["data"]}
    evaluator = models["C"]["conditions"][0]["evaluator"]
    firing = set()
    for series in await prometheus.query(models["A"]["expr"], at):
        value = float(series["value"][1])
        if math.isnan(value):  # dropNN
            continue
        limit = evaluator["params"][0]
        if (value > limit) if evaluator["type"] == "gt" else (value < limit):
            firing.add(_labels(series))
    return firing


async def assert_grafana_agrees(prometheus: Prometheus) -> None:
    at = time.time()
    for alert in ALERTS:
        expected = await prometheus_verdict(prometheus, alert, at)
        assert await grafana_verdict(prometheus, alert, at) == expected, alert.name


def record(stack: LocalStack, name: str, seconds: float) -> None:
    path = stack.paths.root / "alert-timings.json"
    timings = json.loads(path.read_text()) if path.exists() else {}
    timings[name] = round(seconds, 1)
    path.write_text(json.dumps(timings, indent=2) + "\n")
    print(f"{name} fired after {seconds:.1f} s")


async def fires(prometheus: Prometheus, name: str, within: float) -> float:
    async def firing() -> bool:
        return (await prometheus.alerts()).get(name) == "firing"

    return await eventually(firing, within, f"{name} firing")


async def resolves(prometheus: Prometheus, name: str, within: float) -> float:
    async def gone() -> bool:
        return name not in await prometheus.alerts()

    return await eventually(gone, within, f"{name} resolved")


async def test_every_target_is_up_and_idle_is_silent(prometheus: Prometheus) -> None:
    await eventually(lambda: _all_up(prometheus), 60, "every scrape target up")
    up_at = time.time()

    async def evaluated_at_idle() -> bool:  # a few evaluations of every rule since then
        last = await prometheus.query(
            "min(prometheus_rule_group_last_evaluation_timestamp_seconds)"
        )
        interval = await prometheus.query("max(prometheus_rule_group_interval_seconds)")
        if not last or not interval:
            return False
        return float(last[0]["value"][1]) - up_at >= 3 * float(interval[0]["value"][1])

    await eventually(evaluated_at_idle, 60, "three rule evaluations at idle")
    # The test stack has no offsite repository: the one warning an operator must see daily.
    assert await prometheus.alerts() == {"OffsiteBackupNotConfigured": "firing"}
    for alert in ALERTS:
        result = await prometheus.query(alert.expr)
        assert result, f"{alert.name}: its expression has no data at idle"
        for series in result:
            value = float(series["value"][1])
            assert not math.isnan(value), f"{alert.name}: NaN at idle"
    await assert_grafana_agrees(prometheus)


@asynccontextmanager
async def admin_api(endpoints: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the stack's admin API process with an admin key."""
    database = Database(database_settings(endpoints["pgbouncer_dsn"]), CollectorRegistry())
    try:
        async with database.unit_of_work() as uow:
            staff = Staff(name=f"sre-{os.getpid()}-{time.monotonic_ns()}", role=Role.ADMIN)
            uow.session.add(staff)
            await uow.session.flush()
            assert staff.id is not None
            key = (await issue_key(uow, staff.id, "alert tests")).key
    finally:
        await database.dispose()
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(
        base_url=endpoints["admin_api_url"], headers=headers, timeout=60
    ) as client:
        yield client


async def _loop(
    request: Callable[[], Awaitable[object]], stop: asyncio.Event, pause: float, after: float = 0
) -> None:
    await asyncio.sleep(after)
    while not stop.is_set():
        with contextlib.suppress(httpx.HTTPError):
            await request()
        await asyncio.sleep(pause)


async def test_an_outage_fires_the_error_rate_alerts(
    stack: LocalStack, endpoints: dict[str, str], prometheus: Prometheus
) -> None:
    stop = asyncio.Event()
    async with (
        admin_api(endpoints) as client,
        httpx.AsyncClient(base_url=endpoints["telegram_api_url"]) as telegram,
    ):

        def list_products() -> Awaitable[httpx.Response]:
            return client.get("/products")

        def message() -> Awaitable[httpx.Response]:
            user = 7000 + int(time.time()) % 1000
            return telegram.post("/__control/messages", json={"user_id": user, "text": "hi"})

        # Traffic before, during and after: the ratios are of real requests and updates.
        loops = [
            asyncio.create_task(_loop(list_products, stop, 0.5)),
            asyncio.create_task(_loop(list_products, stop, 0.5)),
            asyncio.create_task(_loop(message, stop, 1.0)),
        ]
        try:
            await asyncio.sleep(3)
            stack.stop_postgres()
            started = time.monotonic()
            try:
                for name in ("AdminApiErrorRate", "DatabaseErrorRate", "BotUpdateErrorRate"):
                    await fires(prometheus, name, 180)
                    record(stack, name, time.monotonic() - started)
                await assert_grafana_agrees(prometheus)
            finally:
                stack.start_postgres()
            for name in ("AdminApiErrorRate", "DatabaseErrorRate", "BotUpdateErrorRate"):
                await resolves(prometheus, name, 240)
        finally:
            stop.set()
            await asyncio.gather(*loops)


async def test_held_connections_and_a_long_statement_fire_the_pool_and_slow_query_alerts(
    stack: LocalStack, endpoints: dict[str, str], prometheus: Prometheus
) -> None:
    owner = await asyncpg.connect(endpoints["postgres_dsn"])
    held: list[asyncpg.Connection] = []
    stop = asyncio.Event()
    try:
        product = await owner.fetchval(
            "INSERT INTO products (code, title, description, price_stars, credits) "
            "VALUES ($1, 'held', '', 1, 1) RETURNING id",
            f"held-{time.monotonic_ns()}",
        )
        # The row is locked: every PATCH of it holds a pooled connection of the admin API
        # while its UPDATE waits, a statement that runs (waiting) for as long as the lock.
        locker = owner.transaction()
        await locker.start()
        await owner.execute("SELECT 1 FROM products WHERE id = $1 FOR UPDATE", product)
        async with admin_api(endpoints) as client:

            def patch() -> Awaitable[httpx.Response]:
                return client.patch(f"/products/{product}", json={"title": f"t{time.time()}"})

            started = time.monotonic()
            # Started apart, so the statement timeout (30 s) never ends them all at once: at
            # any moment at least 9 of the pool's 10 connections are held, 2 more wait.
            loops = [
                asyncio.create_task(_loop(patch, stop, 0.05, after=0.5 * i)) for i in range(12)
            ]
            # PgBouncer's server pool for the app database (20): 8 more transactions held.
            for _ in range(8):
                connection = await asyncpg.connect(endpoints["pgbouncer_dsn"])
                await connection.execute("BEGIN; SELECT 1")
                held.append(connection)
            for name in (
                "SlowQueryRunning",
                "DatabasePoolSaturated",
                "PgBouncerServerPoolSaturated",
            ):
                await fires(prometheus, name, 150)
                record(stack, name, time.monotonic() - started)
            await assert_grafana_agrees(prometheus)
            # The staff chat of the local Telegram Bot API got it through Alertmanager.
            async with httpx.AsyncClient(base_url=endpoints["telegram_api_url"]) as telegram:

                async def delivered() -> bool:
                    reply = await telegram.get(
                        "/__control/calls",
                        params={"chat_id": str(DEFAULT_STAFF_CHAT_ID), "method": "sendMessage"},
                    )
                    texts = [call["params"]["text"] for call in reply.json()["result"]]
                    return any("[FIRING] DatabasePoolSaturated" in text for text in texts)

                await eventually(delivered, 60, "the pool alert in the staff chat")
            await locker.rollback()  # the fault ends
            stop.set()
            await asyncio.gather(*loops)
        for connection in held:
            await connection.close()
        held.clear()
        # Statements of 30 s (cancelled by the statement timeout) or of the lock's length
        # finished: counted in the 5 s bucket.
        await fires(prometheus, "SlowQueriesFinished", 60)
        for name in ("SlowQueryRunning", "DatabasePoolSaturated", "PgBouncerServerPoolSaturated"):
            await resolves(prometheus, name, 60)
    finally:
        stop.set()
        for connection in held:
            await connection.close()
        await owner.close()


async def test_an_unwritable_archive_under_traffic_fires_the_archive_alerts(
    stack: LocalStack, endpoints: dict[str, str], prometheus: Prometheus
) -> None:
    archive = stack.paths.wal_archive
    mode = archive.stat().st_mode & 0o777
    backup = await asyncpg.connect(endpoints["backup_dsn"])
    try:
        async with wal_traffic(endpoints):
            os.chmod(archive, 0o500)
            started = time.monotonic()
            try:
                await _switch_wal(backup)
                record(stack, "WalArchiveFailing", await fires(prometheus, "WalArchiveFailing", 60))
                # The completed segment waits: more than archive_timeout, then `for`.
                record(stack, "WalArchiveStale", await fires(prometheus, "WalArchiveStale", 240))
                await assert_grafana_agrees(prometheus)
            finally:
                os.chmod(archive, mode)
            for name in ("WalArchiveFailing", "WalArchiveStale"):
                await resolves(prometheus, name, 150)
            print(f"unwritable archive: fired and resolved in {time.monotonic() - started:.0f} s")
    finally:
        await backup.close()


async def _switch_wal(connection: asyncpg.Connection) -> str:
    """Complete the current WAL segment (as archive_timeout or a full segment would); its name."""
    name: str = await connection.fetchval("SELECT pg_walfile_name(pg_switch_wal())")
    return name


@asynccontextmanager
async def wal_traffic(endpoints: dict[str, str]) -> AsyncIterator[None]:
    """Rows written all along, as a busy stack writes WAL: a product's title updated 5 times a
    second through PgBouncer, as the admin API would."""
    connection = await asyncpg.connect(endpoints["pgbouncer_dsn"])
    product = await connection.fetchval(
        "INSERT INTO products (code, title, description, price_stars, credits) "
        "VALUES ($1, 'traffic', '', 1, 1) RETURNING id",
        f"traffic-{time.monotonic_ns()}",
    )
    stop = asyncio.Event()

    async def write() -> None:
        while not stop.is_set():
            await connection.execute(
                "UPDATE products SET title = $1 WHERE id = $2", f"t{time.time()}", product
            )
            await asyncio.sleep(0.2)

    task = asyncio.create_task(write())
    try:
        yield
    finally:
        stop.set()
        await task
        await connection.close()


async def test_a_hung_archive_command_under_traffic_fires_the_archive_alert(
    stack: LocalStack, endpoints: dict[str, str], prometheus: Prometheus
) -> None:
    """archive-wal.sh hangs (as on a dead network filesystem): where the next segments'
    archived copies go stand FIFOs that the test holds open and never writes, so its gzip
    waits for data for ever. Nothing fails, so only the backlog shows it."""
    archive = stack.paths.wal_archive
    backup = await asyncpg.connect(endpoints["backup_dsn"])
    fifos: dict[Path, int] = {}
    try:
        async with wal_traffic(endpoints):
            names = await backup.fetch(
                "SELECT pg_walfile_name(pg_current_wal_lsn() + n * 16777216::numeric) AS name "
                "FROM generate_series(0, 2) AS n"
            )
            for row in names:
                fifo = archive / f"{row['name']}.gz"
                os.mkfifo(fifo, 0o644)
                # Open for reading and writing: a reader's read then waits instead of ending.
                fifos[fifo] = os.open(fifo, os.O_RDWR)
            started = time.monotonic()
            await _switch_wal(backup)
            record(stack, "WalArchiveStale", await fires(prometheus, "WalArchiveStale", 240))
            assert "WalArchiveFailing" not in await prometheus.alerts()  # hung, not failing
            await assert_grafana_agrees(prometheus)
        # The fault ends: the FIFOs go, the hung attempt reads end of file and fails, and
        # PostgreSQL's retry archives the segment.
        _remove_fifos(fifos)
        await resolves(prometheus, "WalArchiveStale", 180)
        await resolves(prometheus, "WalArchiveFailing", 120)
        print(f"hung archive: fired and resolved in {time.monotonic() - started:.0f} s")
    finally:
        _remove_fifos(fifos)
        await backup.close()


def _remove_fifos(fifos: dict[Path, int]) -> None:
    while fifos:
        fifo, descriptor = fifos.popitem()
        fifo.unlink(missing_ok=True)
        os.close(descriptor)


async def test_postgres_stopped_at_idle_fires_postgres_down_and_resolves(
    stack: LocalStack, endpoints: dict[str, str], prometheus: Prometheus
) -> None:
    """No traffic: only the backup service's view of PostgreSQL tells."""
    stack.stop_postgres()
    started = time.monotonic()
    try:
        record(stack, "PostgresDown", await fires(prometheus, "PostgresDown", 150))
        await assert_grafana_agrees(prometheus)
    finally:
        stack.start_postgres()
    await resolves(prometheus, "PostgresDown", 60)
    print(f"PostgresDown fired and resolved in {time.monotonic() - started:.0f} s")


def _pgbouncer(stack: LocalStack) -> PgBouncerServer:
    """The PgBouncer the services use (the one pgbouncer_exporter watches)."""
    state = StackState.load(stack.paths.state)
    (bouncer,) = (b for b in state.bouncers if b.name == "pgbouncer")
    return PgBouncerServer(stack.paths, ServiceUser.detect(), bouncer)


async def test_pgbouncer_stopped_at_idle_fires_pgbouncer_down_and_resolves(
    stack: LocalStack, prometheus: Prometheus
) -> None:
    bouncer = _pgbouncer(stack)
    bouncer.stop()
    try:
        record(stack, "PgBouncerDown", await fires(prometheus, "PgBouncerDown", 150))
        await assert_grafana_agrees(prometheus)
    finally:
        bouncer.start()
    await resolves(prometheus, "PgBouncerDown", 60)


async def test_an_idle_stack_never_raises_the_archive_alert(
    endpoints: dict[str, str], prometheus: Prometheus
) -> None:
    """At idle PostgreSQL completes a segment only when something was written (around a timed
    checkpoint), so the archive's newest file grows old; that is no fault. Watched for longer
    than checkpoint_timeout plus the rule's `for`, nothing about the archive is pending."""
    stale = BY_NAME["WalArchiveStale"]
    backup = await asyncpg.connect(endpoints["backup_dsn"])
    try:
        timeout = await backup.fetchval(
            "SELECT setting::int FROM pg_settings WHERE name = 'checkpoint_timeout'"
        )
    finally:
        await backup.close()
    watch = timeout + _seconds(stale.for_) + 30
    started = time.monotonic()
    while time.monotonic() - started < watch:
        alerts = await prometheus.alerts()
        assert "WalArchiveStale" not in alerts, f"{alerts} after {time.monotonic() - started:.0f} s"
        await asyncio.sleep(2)
    # The idle the old rule (newest archived file older than 120 s for 2 minutes) paged on.
    (since,) = await prometheus.query(
        f"max(max_over_time(backup_wal_seconds_since_last_archived[{watch}s]))"
    )
    print(f"idle for {watch} s; the archive's newest file reached {since['value'][1]} s old")
    assert float(since["value"][1]) > 120


def _seconds(duration: str) -> int:
    """Prometheus' "1m", "30s" or "0s" in seconds."""
    return int(duration[:-1]) * {"s": 1, "m": 60}[duration[-1]]
