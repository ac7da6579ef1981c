"""Operators' entry points answer --help (and `list`) without loading what they do not need,
and the local stack's --help names every option (issue 16, items 16 and 18)."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# The database layer and the web frameworks: seconds of imports none of these commands needs.
HEAVY = ("sqlalchemy", "sqlmodel", "asyncpg", "aiohttp", "aiogram", "fastapi", "prometheus_client")

LOADED = """
import json, runpy, sys
sys.argv = {argv!r}
try:
    runpy.run_module({module!r}, run_name="__main__")
except SystemExit:
    pass
print(json.dumps(sorted({{name.split(".")[0] for name in sys.modules}})), file=sys.stderr)
"""


def loaded_packages(module: str, *args: str, env: dict[str, str] | None = None) -> set[str]:
    """The top-level packages imported by `python -m module args...`."""
    result = subprocess.run(
        [sys.executable, "-c", LOADED.format(argv=[module, *args], module=module)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    return set(json.loads(result.stderr.strip().splitlines()[-1]))


def test_backup_cli_help_loads_no_database_layer() -> None:
    loaded = loaded_packages("services.backup.cli", "--help")
    assert not loaded & set(HEAVY), loaded & set(HEAVY)
    assert "pydantic" not in loaded


def test_backup_cli_list_loads_no_database_layer(tmp_path: Path) -> None:
    env = {"BACKUP_SERVICE_DIR": str(tmp_path), "BACKUP_SERVICE_WAL_ARCHIVE": str(tmp_path)}
    loaded = loaded_packages("services.backup.cli", "list", env={**os.environ, **env})
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_backup_cli_help_time_against_a_bare_interpreter() -> None:
    """A benchmark, not an assertion on time: the ratio to `python -c pass` in the same run."""

    def median(argv: list[str]) -> float:
        times = []
        for _ in range(3):
            started = time.perf_counter()
            subprocess.run(argv, cwd=REPO, capture_output=True, check=True, timeout=120)
            times.append(time.perf_counter() - started)
        return statistics.median(times)

    bare = median([sys.executable, "-c", "pass"])
    helped = median([sys.executable, "-m", "services.backup.cli", "--help"])
    print(
        f"backup cli --help: {helped:.3f} s, bare python: {bare:.3f} s, ratio {helped / bare:.1f}"
    )


@pytest.mark.parametrize("option", ["--port-base", "--purge", "--scrape-interval", "--state-dir"])
def test_stack_help_names_every_option(option: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "infra.stack", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert option in result.stdout
