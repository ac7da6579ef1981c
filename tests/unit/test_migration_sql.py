"""Migrations are safe under a running bot, and checked: every migration renders to SQL without
a database, sets the lock and statement timeouts, and squawk (as `make lint` runs it) passes
the history and refuses an unsafe new migration."""

from __future__ import annotations

import subprocess
from pathlib import Path

from infra.migration_lint import render, squawk_command


def test_every_migration_renders_with_timeouts_and_the_lock(tmp_path: Path) -> None:
    files = render(tmp_path)
    assert [path.name for path in files][:3] == ["0001.sql", "0002.sql", "0003.sql"]
    for path in files:
        sql = path.read_text()
        assert "SET lock_timeout = '5s'" in sql, path.name
        assert "SET statement_timeout = '60s'" in sql, path.name
        assert "pg_advisory_lock(" in sql, path.name
        assert "-- Running upgrade" in sql, path.name


def test_squawk_passes_the_history_and_refuses_an_unsafe_new_migration(tmp_path: Path) -> None:
    files = render(tmp_path)
    history = subprocess.run(squawk_command(files), capture_output=True, text=True, check=False)
    assert history.returncode == 0, history.stdout + history.stderr
    unsafe = tmp_path / "9999.sql"
    unsafe.write_text(
        "BEGIN;\nSET lock_timeout = '5s';\nSET statement_timeout = '60s';\n"
        "CREATE INDEX ix_users_first_name ON users (first_name);\n"
        "ALTER TABLE users ADD CONSTRAINT ck_users_named CHECK (first_name <> '');\nCOMMIT;\n"
    )
    found = subprocess.run(
        [*squawk_command([*files, unsafe]), "--reporter=gcc"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert found.returncode != 0
    findings = found.stdout.splitlines()
    assert all(line.startswith(str(unsafe)) for line in findings if ": warning: " in line)
    assert "require-concurrent-index-creation" in found.stdout
    assert "constraint-missing-not-valid" in found.stdout
