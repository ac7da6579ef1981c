"""Migrations: the stairway (every revision upgrades, downgrades and upgrades again), no drift
between models and migrations, one migrator at a time, and least-privilege roles."""

from __future__ import annotations

import os
import subprocess
import sys
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


def alembic(endpoints: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "alembic", *args],
        cwd=REPO,
        env=alembic_env(endpoints),
        capture_output=True,
        text=True,
        timeout=120,
    )


def revisions() -> list[str]:
    script = ScriptDirectory.from_config(Config(str(REPO / "alembic.ini")))
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


@pytest.fixture
def migrations(endpoints: dict[str, str]) -> object:
    """Leaves the database at head whatever the test did."""
    yield None
    result = alembic(endpoints, "upgrade", "head")
    assert result.returncode == 0, result.stderr


async def current_revision(endpoints: dict[str, str]) -> str | None:
    connection = await asyncpg.connect(endpoints["postgres_dsn"])
    try:
        exists = await connection.fetchval("SELECT to_regclass('alembic_version') IS NOT NULL")
        return await connection.fetchval("SELECT version_num FROM alembic_version") if exists else None
    finally:
        await connection.close()


@pytest.mark.usefixtures("migrations")
async def test_stairway(endpoints: dict[str, str]) -> None:
    assert (result := alembic(endpoints, "downgrade", "base")).returncode == 0, result.stderr
    for revision in revisions():
        for step in (("upgrade", revision), ("downgrade", "-1"), ("upgrade", revision)):
            result = alembic(endpoints, *step)
            assert result.returncode == 0, f"{step}: {result.stderr}"
        assert await current_revision(endpoints) == revision


def test_models_and_migrations_do_not_drift(endpoints: dict[str, str]) -> None:
    result = alembic(endpoints, "check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No new upgrade operations detected" in result.stdout + result.stderr


@pytest.mark.usefixtures("migrations")
async def test_two_migrators_at_once_both_succeed(endpoints: dict[str, str]) -> None:
    assert (result := alembic(endpoints, "downgrade", "base")).returncode == 0, result.stderr
    command = [sys.executable, "-m", "alembic", "upgrade", "head"]
    runs = [
        subprocess.Popen(command, cwd=REPO, env=alembic_env(endpoints), stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    errors = [run.communicate(timeout=120)[1] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], errors
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
