"""Every service's `python -m` entry point: --help lists the settings it reads and starts
nothing; in production, development or weak values are refused in one line that names the
variables and shows nothing of the values, with no traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

# Each test starts `python -m <service>` processes, seconds of imports (aiogram) each.
pytestmark = pytest.mark.slow

SERVICES = {
    "services.bot": ["BOT_TOKEN", "BOT_WEBHOOK_SECRET", "DB_PASSWORD", "DB_POOL_SIZE"],
    "services.admin_api": ["ADMIN_API_PORT", "ADMIN_API_MAX_BODY_BYTES", "DB_HOST"],
    "services.backup": ["BACKUP_SERVICE_STATE_DIR", "BACKUP_PASSWORD", "MIGRATE_HOST"],
    "services.telegram_api": ["TELEGRAM_API_PORT", "TELEGRAM_API_STRICT"],
}


def _run(module: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(("module", "variables"), SERVICES.items())
def test_help_lists_the_settings_and_starts_nothing(module: str, variables: list[str]) -> None:
    result = _run(module, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: python -m {module}")
    for variable in variables:
        assert variable in result.stdout, variable
    assert "change-me-dev-only" not in result.stdout  # secrets' defaults are not shown


def test_production_guard_refuses_in_one_line_without_the_values() -> None:
    token = "7000000001:AAHsecretTokenValueThatMustNotLeak123"
    result = _run(
        "services.bot",
        APP_ENVIRONMENT="production",
        BOT_TOKEN="1000000001:local-dev-token-not-a-secret",
        BOT_WEBHOOK_SECRET="x",
        DB_PASSWORD="",
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert "BOT_WEBHOOK_SECRET" in lines[0] and "BOT_TOKEN" in lines[0]
    leaky = _run(
        "services.bot",
        APP_ENVIRONMENT="production",
        BOT_TOKEN=token,
        BOT_WEBHOOK_SECRET="has space",
    )
    assert leaky.returncode == 2
    assert "BOT_WEBHOOK_SECRET" in leaky.stderr
    assert token[:12] not in leaky.stderr and "has space" not in leaky.stderr
    database = _run(
        "services.bot",
        APP_ENVIRONMENT="production",
        BOT_TOKEN=token,
        BOT_WEBHOOK_SECRET="s" * 40,
        DB_PASSWORD="",
    )
    assert database.returncode == 2 and "DB_PASSWORD" in database.stderr
