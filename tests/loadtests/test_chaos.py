"""`make chaos` end to end, a short subset for CI: PgBouncer killed with kill -9 and PostgreSQL
restarted (immediate) under Telegram-like load, each scenario's thresholds asserted from
chaos.json (about four minutes here: a stack of its own, two scenarios, the alerts resolving)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from loadtests.chaos.figures import KEYS

REPO = Path(__file__).resolve().parents[2]
SUBSET = ("pgbouncer-kill", "postgres-restart")
# Its own stack beside the test suite's (whose ports end at base+2099, nothing near +50's).
PORT_BASE = int(os.environ.get("TEST_STACK_PORT_BASE", "25530")) + 50
PROXY_PORT = int(os.environ.get("TEST_CHAOS_PROXY_PORT", str(PORT_BASE + 2090)))


@pytest.mark.slow  # a stack of its own (loadtests.chaos starts and stops it), not the fixture
def test_the_quick_chaos_scenarios_lose_nothing_and_recover(tmp_path: Path) -> None:
    state_dir = Path(os.environ.get("TEST_STACK_DIR", REPO / ".stack-test")).with_name(
        "stack-chaos"
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "loadtests.chaos",
            "--scenario",
            ",".join(SUBSET),
            "--state-dir",
            str(state_dir),
            "--port-base",
            str(PORT_BASE),
            "--proxy-port",
            str(PROXY_PORT),
            "--reports",
            str(tmp_path),
            "--stop",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    output = result.stdout[-4000:] + result.stderr[-3000:]
    reports = list(tmp_path.glob("*/chaos.json"))
    assert len(reports) == 1, output
    rows = json.loads(reports[0].read_text())
    assert [row["scenario"] for row in rows] == list(SUBSET), output
    for row in rows:
        assert list(row) == list(KEYS)
        assert row["updates_sent"] > 50, row
        assert row["updates_lost"] == 0, row
        assert row["updates_applied_twice"] == 0, row
        assert row["replies_sent_twice"] == 0, row
        assert row["recovery_seconds"] is not None, row
        assert row["backlog_cleared_seconds"] is not None, row
        assert row["passed"] is True, (row, output)
    assert result.returncode == 0, output
    page = (reports[0].parent / "index.html").read_text()
    assert "pgbouncer-kill" in page and "PASSED" in page
