"""Backup fixtures: a backup Context per test module, with its own backup directory under the
test stack's state directory (the service user must reach it) and the stack's real WAL
archive; helpers that look inside a restored data directory and scrape the metrics."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from infra.stack import LocalStack
from services.backup.app import create_app
from services.backup.context import Context
from services.backup.live import LiveServer
from services.backup.runs import RunLog
from services.backup.scratch import ScratchServer
from services.backup.settings import BackupServiceSettings
from services.core.db import Database
from services.core.os_user import ServiceUser
from services.core.settings import BackupRoleSettings
from tests.conftest import database_settings

REPO = Path(__file__).resolve().parents[2]
ContextFactory = Callable[[str], Awaitable[Context]]


def backup_settings(
    stack: LocalStack, endpoints: dict[str, str], name: str
) -> BackupServiceSettings:
    url = urlsplit(endpoints["backup_dsn"])
    directory = stack.paths.root / "test-backups" / name
    shutil.rmtree(directory, ignore_errors=True)
    return BackupServiceSettings(
        dir=directory,
        wal_archive=stack.paths.wal_archive,
        MIGRATE_HOST=url.hostname,
        MIGRATE_PORT=url.port,
        MIGRATE_DATABASE=url.path.lstrip("/"),
        archive_wait_seconds=30,
        recovery_timeout_seconds=120,
    )


@pytest.fixture(scope="module")
async def make_context(
    stack: LocalStack, endpoints: dict[str, str]
) -> AsyncIterator[ContextFactory]:
    """Contexts with their own backup directory each, disposed at the end of the module."""
    databases: list[Database] = []
    url = urlsplit(endpoints["backup_dsn"])
    role = BackupRoleSettings(user=url.username or "", password=SecretStr(url.password or ""))

    async def make(name: str) -> Context:
        settings = backup_settings(stack, endpoints, name)
        database = Database(database_settings(endpoints["pgbouncer_dsn"]), CollectorRegistry())
        databases.append(database)
        return Context(
            settings=settings,
            live=LiveServer(settings, role),
            database=database,
            runs=RunLog(database),
            user=ServiceUser.detect(),
        )

    yield make
    for database in databases:
        await database.dispose()


@pytest.fixture
def empty_tables() -> bool:
    """`owner` (tests/conftest.py) keeps the rows: the tests read backup_runs as written."""
    return False


async def add_flag(owner: asyncpg.Connection, key: str) -> None:
    await owner.execute("INSERT INTO feature_flags (key, description) VALUES ($1, '')", key)


async def flags_in(
    context: Context, data_dir: Path, prefix: str, *, promoted: bool = False
) -> set[str]:
    """The feature flag keys starting with prefix in a restored (stopped) data directory;
    `promoted`: after its recovery to a target has ended (pgBackRest's restore)."""
    server = ScratchServer(context.settings, data_dir, context.user, keep_wal=False)
    await server.start()
    try:
        if promoted:
            await server.wait_promoted()
        rows = await server.query(
            f"SELECT key FROM feature_flags WHERE key LIKE '{prefix}%' ORDER BY key",
            context.settings.pg_database,
        )
    finally:
        await server.stop()
    return set(rows.split())


async def scrape(context: Context) -> dict[str, float]:
    """The backup service's /metrics for this context, as {sample name with labels: value}."""
    registry = CollectorRegistry()
    async with TestClient(TestServer(create_app(context, registry))) as client:
        reply = await client.get("/metrics")
        assert reply.status == 200
        text = await reply.text()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def backup_env(context: Context, stack: LocalStack) -> dict[str, str]:
    """The environment of the backup commands and service: the test stack's env file (as
    `make backup` sources it) and this context's directories."""
    env = dict(os.environ)
    for line in stack.paths.env.read_text().splitlines():
        key, _, value = line.partition("=")
        env[key] = "".join(shlex.split(value))
    return env | {
        "BACKUP_SERVICE_STATE_DIR": str(stack.paths.root),
        "BACKUP_SERVICE_DIR": str(context.settings.backup_dir),
        "BACKUP_SERVICE_WAL_ARCHIVE": str(context.settings.archive_dir),
    }


def cli(context: Context, stack: LocalStack, *args: str) -> subprocess.CompletedProcess[str]:
    """The operators' command, with the test stack's settings in its environment."""
    return subprocess.run(
        [sys.executable, "-m", "services.backup.cli", *args],
        cwd=REPO,
        env=backup_env(context, stack),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
