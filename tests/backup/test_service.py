"""The backup service: `up` starts it and publishes backup_url; it answers /health/live and
exports the archive figures and the core's database metrics; its scheduler takes a backup when
none is recent and leaves the first drill for one interval after start-up."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from datetime import UTC, datetime, timedelta

import aiohttp
from prometheus_client import CollectorRegistry

from infra.stack import LocalStack
from services.backup.catalogue import Catalogue, Verification
from services.backup.metrics import JobMetrics
from services.backup.scheduler import Scheduler
from services.backup.scratch import free_port
from tests.backup.conftest import REPO, ContextFactory, backup_env


async def test_stack_runs_the_backup_service(endpoints: dict[str, str]) -> None:
    url = endpoints["backup_url"]
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url}/health/live") as reply:
            assert reply.status == 200
        async with session.get(f"{url}/metrics") as reply:
            assert reply.status == 200
            text = await reply.text()
    assert "backup_wal_archived_total" in text
    assert "backup_postgres_up 1.0" in text
    assert "db_pool_size" in text


async def test_scheduler_takes_a_backup_when_none_is_recent_and_then_waits(
    make_context: ContextFactory,
) -> None:
    context = await make_context("scheduler")
    scheduler = Scheduler(context, JobMetrics(CollectorRegistry()))
    now = datetime.now(UTC)
    assert scheduler.backup_due(now)
    assert not scheduler.drill_due(now)  # the first drill waits one interval after start-up

    await scheduler.tick()

    [backup] = Catalogue(context.settings.backup_dir).backups()
    assert backup.verification is Verification.VERIFIED
    assert not scheduler.backup_due(datetime.now(UTC))
    interval = timedelta(seconds=context.settings.backup_interval_seconds)
    assert scheduler.backup_due(backup.finished_at + interval)
    assert scheduler.drill_due(now + timedelta(seconds=context.settings.drill_interval_seconds))
    await scheduler.tick()
    assert len(Catalogue(context.settings.backup_dir).backups()) == 1


async def test_service_process_backs_up_on_schedule_and_stops_on_sigterm(
    make_context: ContextFactory, stack: LocalStack
) -> None:
    context = await make_context("process")
    port = free_port(28600, 28699)
    env = backup_env(context, stack) | {"BACKUP_SERVICE_PORT": str(port)}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.backup",
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            deadline = time.monotonic() + 60
            while True:
                metrics = await _get(session, f"{url}/metrics")
                if 'backup_job_runs_total{outcome="succeeded",task="backup"} 1.0' in metrics:
                    break
                assert process.returncode is None, "the service exited"
                assert time.monotonic() < deadline, "no scheduled backup within 60 s"
                await asyncio.sleep(0.5)
            assert "backup_last_success_timestamp_seconds" in metrics
            async with session.get(f"{url}/health/ready") as reply:
                assert reply.status == 200, await reply.text()
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, output.decode()
    assert len(Catalogue(context.settings.backup_dir).backups()) == 1


async def _get(session: aiohttp.ClientSession, url: str) -> str:
    try:
        async with session.get(url) as reply:
            return await reply.text()
    except aiohttp.ClientConnectionError:
        return ""  # not listening yet
