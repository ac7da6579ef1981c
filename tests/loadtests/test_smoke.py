"""`make loadtest PROFILE=smoke` end to end: the whole local stack in its memory cgroups,
Locust playing Telegram and staff, and the report's verdict (about three minutes)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from infra.cgroups import MemoryCgroups

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # a stack of its own (loadtests.run starts and stops it), not the fixture
def test_a_smoke_run_loses_nothing_and_stays_inside_its_limits(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "loadtests.run",
            "--profile",
            "smoke",
            "--reports",
            str(tmp_path),
            "--stop",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    report = tmp_path / "latest"
    assert (report / "summary.json").exists(), result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads((report / "summary.json").read_text())
    failed = [c for c in summary["checks"] if not c["passed"]]
    assert result.returncode == 0, (failed, result.stdout[-3000:])
    assert summary["passed"] is True
    assert summary["updates_sent"] > 100
    assert summary["updates_lost"] == 0
    assert summary["updates_applied_twice"] == 0
    assert summary["replies_sent_twice"] == 0
    assert summary["payments_credited_twice"] == 0
    assert summary["oom_kills"] == 0
    # Enforced wherever cgroups can be written (CI runs as root); else the report says why.
    assert summary["memory_enforced"] is (MemoryCgroups.unavailable() is None)
    assert summary["memory_peak_total_bytes"] <= 2 * 1024**3
    assert summary["accounting"]["payments_acknowledged"] > 0  # the mix reached payments
    page = (report / "index.html").read_text()
    assert "Thresholds" in page and "data:image/png;base64," in page
    assert (report / "locust.html").exists()
