"""Migrations: the stairway (every revision upgrades, downgrades and upgrades again), no drift
between models and migrations, one migrator at a time, and least-privilege roles."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory

REPO = Path(__file__).resolve().parents[2]


def alembic_env(endpoints: dict[str, str]) -> dict[str, str]:
    url = urlsplit(endpoints["postgres_dsn"])
    app_user = urlsplit(endpoints["pgbouncer_dsn"]).username or ""
    return os.environ | {
        "MIGRATE_HOST": url.hostname or "",
        "MIGRATE_PORT": str(url.port),
        "MIGRATE_USER": url.username or "",
        "MIGRATE_PASSWORD": url.password or "",
        "MIGRATE_DATABASE": url.path.lstrip("/"),
        "DB_USER": app_user,
    }


@dataclass
class Run:
    returncode: int
    output: str


async def alembic(endpoints: dict[str, str], *args: str) -> Run:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "alembic",
        *args,
        cwd=REPO,
        env=alembic_env(endpoints),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return Run(process.returncode, output.decode())


def revisions() -> list[str]:
    script = ScriptDirectory.from_config(Config(str(REPO / "alembic.ini")))
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


@pytest.fixture
async def migrations(endpoints: dict[str, str]) -> AsyncIterator[None]:
    """Leaves the database at head whatever the test did."""
    yield None
    result = await alembic(endpoints, "upgrade", "head")
    assert result.returncode == 0, result.output


async def current_revision(endpoints: dict[str, str]) -> str | None:
    connection = await asyncpg.connect(endpoints["postgres_dsn"])
    try:
        exists = await connection.fetchval("SELECT to_regclass('alembic_version') IS NOT NULL")
        return (
            await connection.fetchval("SELECT version_num FROM alembic_version") if exists else None
        )
    finally:
        await connection.close()


@pytest.mark.usefixtures("migrations")
async def test_stairway(endpoints: dict[str, str]) -> None:
    result = await alembic(endpoints, "downgrade", "base")
    assert result.returncode == 0, result.output
    for revision in revisions():
        for step in (("upgrade", revision), ("downgrade", "-1"), ("upgrade", revision)):
            result = await alembic(endpoints, *step)
            assert result.returncode == 0, f"{step}: {result.output}"
        assert await current_revision(endpoints) == revision


async def test_models_and_migrations_do_not_drift(endpoints: dict[str, str]) -> None:
    result = await alembic(endpoints, "check")
    assert result.returncode == 0, result.output
    assert "No new upgrade operations detected" in result.output


@pytest.mark.usefixtures("migrations")
async def test_two_migrators_at_once_both_succeed(endpoints: dict[str, str]) -> None:
    result = await alembic(endpoints, "downgrade", "base")
    assert result.returncode == 0, result.output
    runs = await asyncio.gather(*(alembic(endpoints, "upgrade", "head") for _ in range(2)))
    assert [run.returncode for run in runs] == [0, 0], [run.output for run in runs]
    assert await current_revision(endpoints) == revisions()[-1]


async def test_roles_have_least_privilege(endpoints: dict[str, str]) -> None:
    owner = await asyncpg.connect(endpoints["postgres_dsn"])
    app_url = urlsplit(endpoints["pgbouncer_dsn"])
    backup_user = urlsplit(endpoints["backup_dsn"]).username
    try:
        roles = {
            row["rolname"]: row
            for row in await owner.fetch(
                "SELECT rolname, rolsuper, rolreplication, rolcreaterole, rolcreatedb "
                "FROM pg_roles WHERE rolname = ANY($1::text[])",
                [urlsplit(endpoints["postgres_dsn"]).username, app_url.username, backup_user],
            )
        }
        assert len(roles) == 3
        assert not any(role["rolsuper"] for role in roles.values())
        assert roles[backup_user]["rolreplication"]
        assert not roles[app_url.username]["rolreplication"]
        assert not roles[app_url.username]["rolcreatedb"]
        assert not roles[app_url.username]["rolcreaterole"]
    finally:
        await owner.close()

    # The services' role, through PgBouncer: rows yes, schema and bookkeeping no.
    app = await asyncpg.connect(endpoints["pgbouncer_dsn"], statement_cache_size=0)
    try:
        await app.execute("INSERT INTO feature_flags (key, description) VALUES ('probe', '')")
        await app.execute("DELETE FROM feature_flags WHERE key = 'probe'")
        for forbidden in (
            "CREATE TABLE intruder (id int)",
            "DROP TABLE feature_flags",
            "TRUNCATE feature_flags",
            "ALTER TABLE users ADD COLUMN x int",
            "UPDATE alembic_version SET version_num = 'x'",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await app.execute(forbidden)
    finally:
        await app.close()
