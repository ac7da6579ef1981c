"""Fixtures for the operator's CLI: `botstack` run as a subprocess against the test stack,
finding its settings the way an operator's shell does (the stack's env file)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable

import pytest

from infra.stack import LocalStack
from services.core.db import Database
from tests.conftest import REPO, database_settings

Botstack = Callable[..., subprocess.CompletedProcess[str]]
# The settings' prefixes: taken from the stack's env file, never from the test's environment.
PREFIXES = ("DB_", "MIGRATE_", "BACKUP_", "MONITOR_", "PGBOUNCER_", "BOTSTACK_")


@pytest.fixture(scope="module")
def botstack(stack: LocalStack) -> Botstack:
    env = {k: v for k, v in os.environ.items() if not k.startswith(PREFIXES)}
    env["BOTSTACK_STATE_DIR"] = str(stack.paths.root)

    def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "services.cli", *args],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run


@pytest.fixture
def empty_tables() -> bool:
    """`owner` (tests/conftest.py) keeps the rows: the CLI reports on what the stack holds."""
    return False


@pytest.fixture(scope="module")
async def database(endpoints: dict[str, str]) -> AsyncIterator[Database]:
    from prometheus_client import CollectorRegistry

    db = Database(database_settings(endpoints["pgbouncer_dsn"]), CollectorRegistry())
    try:
        yield db
    finally:
        await db.dispose()
