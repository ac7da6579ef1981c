"""The chaos suite's figures from a ledger of delivery attempts (no stack needed)."""

from __future__ import annotations

from typing import Any

import pytest

from loadtests.accounting import Accounting
from loadtests.chaos import figures
from loadtests.chaos.__main__ import chosen
from loadtests.chaos.scenarios import SCENARIOS


def _entry(*attempts: tuple[float, int]) -> dict[str, Any]:
    return {"attempts": [{"at": at, "ms": 100.0, "status": status} for at, status in attempts]}


def test_recovery_counts_from_the_faults_end_to_the_first_lasting_acknowledgment() -> None:
    ledger = [
        _entry((99.0, 200)),  # before the fault
        _entry((100.5, 500), (101.5, 500), (104.0, 200)),  # refused twice, then applied
        _entry((103.0, 0), (104.9, 200)),  # a broken connection, then applied
    ]
    # The fault: 100 to 102; the last failure began at 103; the next acknowledgment ended at
    # 104.1, 2.1 s after the fault's end.
    assert figures.recovery_seconds(ledger, 100.0, 102.0) == 2.1
    # Every refused update was applied by 105.0; the outbox had nothing due from 104.
    outbox = [(101.0, 3), (103.0, 1), (104.0, 0)]
    assert figures.backlog_cleared_seconds(ledger, 102.0, outbox) == 3.0


def test_a_fault_that_failed_nothing_recovers_at_once_and_one_never_healed_never() -> None:
    steady = [_entry((99.0, 200)), _entry((101.0, 200)), _entry((102.0, 200))]
    assert figures.recovery_seconds(steady, 100.0, 102.0) == 0.1
    # A stall (a paused database): sent during the fault, answered 3 s after its end.
    stalled = [_entry((99.0, 200)), _entry((100.5, 200))]
    stalled[1]["attempts"][0]["ms"] = 4500.0
    assert figures.recovery_seconds(stalled, 100.0, 102.0) == 3.0
    assert figures.backlog_cleared_seconds(stalled, 102.0, []) == 3.0
    broken = [_entry((101.0, 500), (102.0, 502))]
    assert figures.recovery_seconds(broken, 100.0, 101.5) is None
    assert figures.backlog_cleared_seconds(broken, 101.5, []) is None


def test_a_row_has_exactly_the_keys_scripts_rely_on_and_fails_on_any_threshold() -> None:
    counts = Accounting(updates_sent=10, updates_acknowledged=10)
    good = figures.row("bot-kill", counts, 3.0, 5.0, [], (), [], [])
    assert list(good.to_json()) == list(figures.KEYS)
    assert good.passed and good.expected_alert_fired is None
    slow = figures.row("bot-kill", counts, 12.0, 5.0, [], (), [], [])
    assert not slow.passed
    silent = figures.row(
        "postgres-pause", counts, 1.0, 2.0, ["TargetDown"], ("PostgresDown",), [], []
    )
    assert silent.expected_alert_fired is False and not silent.passed
    lost = figures.row(
        "bot-kill", Accounting(updates_sent=3, updates_lost=1), 1.0, 1.0, [], (), [], []
    )
    assert not lost.passed and lost.to_json()["updates_lost"] == 1
    stuck = figures.row(
        "x",
        counts,
        1.0,
        1.0,
        ["DatabaseErrorRate"],
        ("DatabaseErrorRate",),
        ["DatabaseErrorRate"],
        [],
    )
    assert stuck.expected_alert_fired is True and not stuck.passed


def test_scenario_names_are_the_issues_and_unknown_ones_are_refused() -> None:
    issue = (
        "postgres-kill",
        "postgres-restart",
        "postgres-pause",
        "postgres-disk-full",
        "pgbouncer-kill",
        "pgbouncer-pause",
        "pgbouncer-reconnect",
        "bot-kill",
        "bot-term",
        "bot-oom",
        "net-reset",
        "net-blackhole",
        "net-latency",
        "archive-full",
        "telegram-5xx",
        "telegram-429",
        "telegram-slow",
        "admin-outage",
        "backup-during-restart",
        "replicas",
    )
    # Every one built, in the issue's order (SCENARIO=all runs them so).
    assert list(SCENARIOS) == list(issue)
    assert chosen("all") == list(SCENARIOS)
    assert chosen("bot-kill,net-reset") == ["bot-kill", "net-reset"]
    with pytest.raises(SystemExit, match="unknown scenario nope"):
        chosen("nope")
