"""`botstack` against the real test stack: each command's output and exit status."""

from __future__ import annotations

import asyncio
import json
import os
import time

import asyncpg

from infra.stack import LocalStack
from tests.cli.conftest import Botstack


def _status(result_stdout: str) -> dict[str, str]:
    return {check["component"]: check["status"] for check in json.loads(result_stdout)}


async def _wait_healthy(botstack: Botstack, within: float = 180) -> None:
    deadline = time.monotonic() + within
    while (result := botstack("health")).returncode != 0:
        assert time.monotonic() < deadline, result.stdout + result.stderr
        await asyncio.sleep(2)


async def test_health_is_ok_one_line_per_component(botstack: Botstack) -> None:
    # The backup service takes its first base backup on start: healthy once it is verified.
    await _wait_healthy(botstack)
    result = botstack("health")
    lines = result.stdout.splitlines()
    components = [line.split()[1] for line in lines]
    for name in (
        "postgresql",
        "wal-archiver",
        "pgbouncer",
        "outbox",
        "bot",
        "admin-api",
        "backup",
        "backups",
        "drill",
        "disk:archive",
    ):
        assert name in components, result.stdout
    assert all(line.startswith("ok ") for line in lines), result.stdout
    statuses = _status(botstack("health", "--json").stdout)
    assert set(statuses.values()) == {"ok"}


async def test_health_with_postgres_stopped_names_it_and_exits_2(
    stack: LocalStack, botstack: Botstack
) -> None:
    stack.stop_postgres()
    try:
        result = botstack("health")
    finally:
        stack.start_postgres()
    assert result.returncode == 2, result.stdout + result.stderr
    line = next(line for line in result.stdout.splitlines() if " postgresql " in line)
    assert line.startswith("unreachable") and "cannot connect to PostgreSQL" in line
    await _wait_healthy(botstack)


async def _switch_wal(owner: asyncpg.Connection, backup: asyncpg.Connection, key: str) -> None:
    """Write something (a segment with nothing in it is not switched) and close the segment
    (as the backup role, which may)."""
    await owner.execute("INSERT INTO feature_flags (key, description) VALUES ($1, '')", key)
    await backup.execute("SELECT pg_switch_wal()")


async def test_health_with_the_archive_unwritable_is_degraded(
    stack: LocalStack, botstack: Botstack, owner: asyncpg.Connection, endpoints: dict[str, str]
) -> None:
    archive = stack.paths.wal_archive
    backup = await asyncpg.connect(endpoints["backup_dsn"])
    os.chmod(archive, 0o500)
    try:
        await _switch_wal(owner, backup, "health-archive-1")
        deadline = time.monotonic() + 60
        while (result := botstack("health", "--json")).returncode != 1:
            assert time.monotonic() < deadline, result.stdout
            await asyncio.sleep(1)
        checks = {c["component"]: c for c in json.loads(result.stdout)}
        assert checks["wal-archiver"]["status"] == "degraded"
        assert "failed" in checks["wal-archiver"]["reason"]
        shown = botstack("health").stdout
        assert any(
            line.startswith("degraded") and "wal-archiver" in line for line in shown.splitlines()
        )
    finally:
        os.chmod(archive, 0o700)
    try:
        await _switch_wal(owner, backup, "health-archive-2")
    finally:
        await backup.close()
    await _wait_healthy(botstack)


def test_stats_shows_tables_and_slowest_statements(botstack: Botstack) -> None:
    data = json.loads(botstack("stats", "--json", "--sample", "0.5").stdout)
    tables = {row["table"] for row in data["tables"]}
    assert {"users", "outbox", "processed_updates"} <= tables
    assert 0 < data["cache_hit_ratio"] <= 1
    assert data["connections"]
    assert data["transactions_per_second"] >= 0
    assert data["slowest_statements"], "pg_stat_statements is not installed or not readable"
    assert all("insufficient privilege" not in row["query"] for row in data["slowest_statements"])
    text = botstack("stats", "--sample", "0.2")
    assert text.returncode == 0
    assert "Tables:" in text.stdout and "Slowest statements" in text.stdout


async def test_inspect_hides_personal_data_unless_asked_and_audits_the_ask(
    botstack: Botstack, owner: asyncpg.Connection
) -> None:
    user_id = await owner.fetchval(
        "INSERT INTO users (telegram_id, username, first_name) VALUES (777000111, "
        "'inspectee', 'Secretname') RETURNING id"
    )
    await owner.execute(
        "INSERT INTO conversation_messages (user_id, direction, text) VALUES ($1, 'in', "
        "'my private words')",
        user_id,
    )
    for entity in ("users", "messages"):
        result = botstack("inspect", entity, "--user-id", str(user_id), "--json")
        assert result.returncode == 0, result.stderr
        rows = json.loads(result.stdout)
        assert rows and rows[0]["id"]
        assert "Secretname" not in result.stdout and "private words" not in result.stdout
    plain = botstack("inspect", "users", "--limit", "5")
    assert plain.returncode == 0 and "Secretname" not in plain.stdout

    shown = botstack("inspect", "messages", "--user-id", str(user_id), "--show-personal-data")
    assert "my private words" in shown.stdout
    audited = await owner.fetchrow(
        "SELECT actor, summary FROM audit_log WHERE action = 'cli.inspect.personal_data'"
        " ORDER BY id DESC LIMIT 1"
    )
    assert audited is not None and audited["actor"].startswith("cli:")
    assert json.loads(audited["summary"])["user_id"] == user_id

    wrong = botstack("inspect", "passwords")
    assert wrong.returncode == 2 and "no entity 'passwords'" in wrong.stderr
    for entity in ("updates", "tickets", "appointments", "payments", "outbox", "audit", "backups"):
        result = botstack("inspect", entity, "--json", "--limit", "3")
        assert result.returncode == 0, (entity, result.stderr)
        json.loads(result.stdout)


def test_maintenance_runs_every_operation_and_summarises(botstack: Botstack) -> None:
    result = botstack(
        "maintenance",
        "--operations",
        "vacuum,analyze,reindex",
        "--table",
        "outbox",
        "--table",
        "processed_updates",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert len([line for line in lines if " done " in line]) == 6
    assert lines[-1].startswith("summary: 6 steps, 0 skipped, 0 failed; vacuum ")
    data = json.loads(botstack("maintenance", "--operations", "analyze", "--json").stdout)
    assert data and all(step["outcome"] == "done" for step in data)
    bad = botstack("maintenance", "--operations", "defrag")
    assert bad.returncode == 2 and "unknown operation" in bad.stderr


async def test_maintenance_skips_a_table_it_cannot_lock_and_says_so(
    botstack: Botstack, owner: asyncpg.Connection
) -> None:
    async with owner.transaction():
        await owner.execute("LOCK TABLE feature_flags IN ACCESS EXCLUSIVE MODE")
        result = await asyncio.to_thread(
            botstack,
            "maintenance",
            "--operations",
            "analyze",
            "--table",
            "feature_flags",
            "--lock-timeout-ms",
            "100",
        )
    assert result.returncode == 1
    assert "skipped" in result.stdout and "lock not granted within 100 ms" in result.stdout
    assert "1 skipped" in result.stdout


def test_config_shows_sources_and_masks_secrets(botstack: Botstack, stack: LocalStack) -> None:
    result = botstack("config", "--json")
    assert result.returncode == 0, result.stderr
    rows = {(row["service"], row["variable"]): row for row in json.loads(result.stdout)}
    password = rows[("database", "DB_PASSWORD")]
    assert password["value"] == "******" and password["source"] == "env file"
    assert rows[("database", "DB_POOL_SIZE")]["source"] == "default"
    secrets = [
        line.split("=", 1)[1]
        for line in stack.paths.env.read_text().splitlines()
        if "PASSWORD" in line
    ]
    for secret in secrets:
        assert secret.strip("'") not in result.stdout
    assert "DB_PORT" in botstack("config").stdout


def test_backups_lists_as_json_and_text(botstack: Botstack) -> None:
    listed = json.loads(botstack("backups", "--json").stdout)
    assert listed and listed[0]["verification"] in {"verified", "unverified", "corrupt"}
    text = botstack("backups")
    assert text.returncode == 0 and listed[0]["label"] in text.stdout


def test_every_command_has_help_with_an_example(botstack: Botstack) -> None:
    for command in (
        "health",
        "stats",
        "inspect",
        "maintenance",
        "config",
        "backup",
        "backups",
        "verify",
        "restore",
        "drill",
        "admin-key",
    ):
        result = botstack(command, "--help")
        assert result.returncode == 0 and "Example: botstack" in result.stdout, command
