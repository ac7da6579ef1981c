"""The alert catalogue's generated files: in step with the catalogue, accepted by promtool, and
each alert unit-tested by `promtool test rules`: it fires on the series that should fire it,
and stays silent on idle series and on no data."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from infra.binaries import find_promtool
from infra.observability.alerts import ALERTS, Alert
from infra.observability.generate import PROMETHEUS_FILE, RULES_FILE
from infra.observability.runbooks import runbook_url
from infra.observability.scrape import local_targets, prometheus_config
from infra.stack_state import Ports
from infra.system import Apt
from tests.conftest import REPO


@pytest.fixture(scope="module")
def promtool() -> Path:
    return find_promtool(Apt())


@dataclass(frozen=True)
class Case:
    firing: dict[str, str]  # series -> promtool values, `interval` apart
    labels: dict[str, str]  # of the alert that fires (severity added)
    summary: str
    idle: dict[str, str]
    at: str = "10m"
    more_idle: tuple[dict[str, str], ...] = ()
    # Of the series and of the evaluations: an alert over days is checked every 10 minutes
    # (every 15 s, promtool took a minute a suite).
    interval: str = "15s"


JOB = 'job="bot", instance="bot"'
API = 'bot_telegram_api_calls_total{job="bot", instance="bot"'
CASES = {
    "DatabasePoolSaturated": Case(
        {f"db_pool_utilization{{{JOB}}}": "0.8x40"},
        {"job": "bot", "instance": "bot"},
        "bot uses 80% of its database pool",
        {f"db_pool_utilization{{{JOB}}}": "0.7x40"},
    ),
    "PgBouncerServerPoolSaturated": Case(
        {
            'pgbouncer_databases_database_current_connections{database="botstack"}': "18x40",
            'pgbouncer_databases_database_pool_size{database="botstack"}': "20x40",
        },
        {"database": "botstack"},
        "PgBouncer holds 90% of its server pool for botstack",
        {
            'pgbouncer_databases_database_current_connections{database="botstack"}': "2x40",
            'pgbouncer_databases_database_pool_size{database="botstack"}': "20x40",
        },
    ),
    "PostgresConnectionsSaturated": Case(
        {
            'pg_stat_activity_count{datname="botstack", state="idle"}': "50x40",
            "pg_settings_max_connections": "60x40",
        },
        {},
        "PostgreSQL uses 83.33% of max_connections",
        {
            'pg_stat_activity_count{datname="botstack", state="idle"}': "20x40",
            "pg_settings_max_connections": "60x40",
        },
    ),
    "SlowQueriesFinished": Case(
        {
            f'db_query_duration_seconds_bucket{{{JOB}, le="5.0"}}': "0+10x40",
            f'db_query_duration_seconds_bucket{{{JOB}, le="+Inf"}}': "0+10x20 220+10x20",
        },
        {"job": "bot"},
        "bot finished 5.0 statements of 5 s or more per minute (2m average)",
        {
            f'db_query_duration_seconds_bucket{{{JOB}, le="5.0"}}': "0+10x40",
            f'db_query_duration_seconds_bucket{{{JOB}, le="+Inf"}}': "0+10x40",
        },
        at="6m",
    ),
    "SlowQueryRunning": Case(
        {"pg_longest_active_statement_seconds": "0x20 6x20"},
        {},
        "A statement has been running for 6s",
        {"pg_longest_active_statement_seconds": "0.01x40"},
    ),
    "DatabaseErrorRate": Case(
        {
            f'db_errors_total{{{JOB}, kind="unavailable"}}': "0+1x40",
            f'db_queries_total{{{JOB}, operation="select"}}': "0+10x40",
        },
        {},
        "10% of database attempts failed in the last 2m",
        {
            f'db_errors_total{{{JOB}, kind="conflict"}}': "0+5x40",
            f'db_errors_total{{{JOB}, kind="unavailable"}}': "0x40",
            f'db_queries_total{{{JOB}, operation="select"}}': "0+10x40",
        },
    ),
    "BotUpdateErrorRate": Case(
        {
            'bot_updates_total{job="bot", type="message", outcome="failed"}': "0+1x40",
            'bot_updates_total{job="bot", type="message", outcome="handled"}': "0+9x40",
        },
        {},
        "10% of Telegram updates failed in the last 2m",
        {
            'bot_updates_total{job="bot", type="message", outcome="failed"}': "0x40",
            'bot_updates_total{job="bot", type="message", outcome="handled"}': "0+9x40",
        },
    ),
    "AdminApiErrorRate": Case(
        {
            'http_requests_total{job="admin-api", route="/users", method="GET", status="503"}': (
                "0+1x40"
            ),
            'http_requests_total{job="admin-api", route="/users", method="GET", status="200"}': (
                "0+3x40"
            ),
        },
        {},
        "25% of admin API requests answered 5xx in the last 2m",
        {
            'http_requests_total{job="admin-api", route="/users", method="GET", status="200"}': (
                "0+3x40"
            ),
        },
    ),
    "DiskAlmostFull": Case(
        {
            'node_filesystem_avail_bytes{instance="host", mountpoint="/", fstype="ext4"}': "5x40",
            'node_filesystem_size_bytes{instance="host", mountpoint="/", fstype="ext4"}': "100x40",
        },
        {"instance": "host", "mountpoint": "/"},
        "/ is 95% full",
        {
            'node_filesystem_avail_bytes{instance="host", mountpoint="/", fstype="ext4"}': "50x40",
            'node_filesystem_size_bytes{instance="host", mountpoint="/", fstype="ext4"}': "100x40",
        },
    ),
    "DiskFull": Case(
        {
            'node_filesystem_avail_bytes{instance="host", mountpoint="/w", fstype="ext4"}': "1x40",
            'node_filesystem_size_bytes{instance="host", mountpoint="/w", fstype="ext4"}': (
                "100x40"
            ),
        },
        {"instance": "host", "mountpoint": "/w"},
        "/w is full (99%)",
        {
            # 95% full: DiskAlmostFull's, not this one's.
            'node_filesystem_avail_bytes{instance="host", mountpoint="/w", fstype="ext4"}': "5x40",
            'node_filesystem_size_bytes{instance="host", mountpoint="/w", fstype="ext4"}': (
                "100x40"
            ),
        },
    ),
    "MemoryAlmostFull": Case(
        {
            'node_memory_MemAvailable_bytes{instance="host"}': "10x40",
            'node_memory_MemTotal_bytes{instance="host"}': "100x40",
        },
        {"instance": "host"},
        "The host uses 90% of its memory",
        {
            'node_memory_MemAvailable_bytes{instance="host"}': "60x40",
            'node_memory_MemTotal_bytes{instance="host"}': "100x40",
        },
    ),
    "BackupTooOld": Case(
        # At eval time 10m (600 s) a backup from Unix time -108000 is 30 h 10 min old.
        {"backup_last_success_timestamp_seconds": "-108000x40"},
        {},
        "The newest verified base backup is 1d 6h 10m 0s old",
        {"backup_last_success_timestamp_seconds": "0x40"},
    ),
    "BackupDrillFailed": Case(
        {"backup_drill_last_success": "0x40"},
        {},
        "The last restore drill failed",
        {"backup_drill_last_success": "1x40"},
    ),
    "WalArchiveFailing": Case(
        {"backup_wal_archive_failing": "0x20 1x20"},
        {},
        "WAL archiving is failing",
        {"backup_wal_archive_failing": "0x40"},
    ),
    "WalArchiveStale": Case(
        # A completed segment waits from 5m15s on (archive_command stuck or failing).
        {"pg_wal_archive_oldest_waiting_seconds": "0x20 15+15x20"},
        {},
        "The oldest completed WAL segment has waited 5m 0s for the archive",
        # An idle server: nothing completed waits, however long ago the last file was archived
        # (the old rule paged on that).
        {
            "pg_wal_archive_oldest_waiting_seconds": "0x40",
            "backup_wal_seconds_since_last_archived": "0+15x40",
        },
    ),
    "OffsiteBackupNotConfigured": Case(
        {"backup_offsite_configured": "0x40"},
        {},
        "No offsite copy of the database: every backup is on this machine",
        {"backup_offsite_configured": "1x40"},
    ),
    "OffsiteArchivingBehind": Case(
        # The object store goes away at 0; the oldest unshipped file ages from then on.
        {"backup_offsite_lag_seconds": "0+15x60"},
        {},
        "The offsite copy is 11m 0s behind the local WAL archive",
        {"backup_offsite_lag_seconds": "0x20 30x20"},
        at="11m",
    ),
    "OffsiteBackupTooOld": Case(
        {'backup_repository_newest_verified_timestamp_seconds{repository="offsite"}': "-108000x40"},
        {},
        "The newest verified offsite backup is 1d 6h 10m 0s old",
        {
            'backup_repository_newest_verified_timestamp_seconds{repository="offsite"}': "0x40",
            # An old local backup is BackupTooOld's business, not this one's.
            'backup_repository_newest_verified_timestamp_seconds{repository="local"}': "-108000x40",
        },
    ),
    "DisasterDrillFailed": Case(
        {"backup_disaster_drill_last_success": "0x40"},
        {},
        "The last disaster drill failed",
        {"backup_disaster_drill_last_success": "1x40"},
    ),
    "DisasterDrillTooOld": Case(
        # At eval time 10m a drill from Unix time -2764800 (32 days before 0) is 32 d 10 min old.
        {"backup_disaster_drill_last_timestamp_seconds": "-2764800x40"},
        {},
        "The last disaster drill was 32d 0h 10m 0s ago",
        {"backup_disaster_drill_last_timestamp_seconds": "0x40"},
    ),
    "OutboxBehind": Case(
        {'bot_outbox_oldest_pending_age_seconds{job="bot"}': "0+15x40"},
        {},
        "The oldest outbox message has waited 10m 0s",
        {'bot_outbox_oldest_pending_age_seconds{job="bot"}': "0x40"},
    ),
    "TelegramApiErrors": Case(
        {
            f'{API}, method="sendMessage", result="TelegramServerError"}}': "0+2x40",
            f'{API}, method="sendMessage", result="ok"}}': "0+8x40",
        },
        {},
        "20% of Bot API calls failed in the last 2m",
        # Telegram's 429s are its flow control, honoured: not failures.
        {
            f'{API}, method="sendMessage", result="TelegramRetryAfter"}}': "0+5x40",
            f'{API}, method="sendMessage", result="ok"}}': "0+5x40",
        },
        more_idle=(
            # A call now and then timing out on a quiet night: 100%, but of too few to page.
            {f'{API}, method="sendMessage", result="TelegramNetworkError"}}': "0+1x40"},
        ),
    ),
    "TargetDown": Case(
        {'up{job="bot", instance="bot"}': "1x20 0x20"},
        {"job": "bot"},
        "Prometheus cannot scrape bot",
        {'up{job="bot", instance="bot"}': "1x40"},
    ),
    "MaintenanceFailing": Case(
        {
            'maintenance_last_failure_timestamp_seconds{task="retention"}': "100x80",
            'maintenance_last_success_timestamp_seconds{task="retention"}': "50x80",
        },
        {"task": "retention"},
        "Maintenance task retention is failing",
        {
            'maintenance_last_failure_timestamp_seconds{task="retention"}': "50x80",
            'maintenance_last_success_timestamp_seconds{task="retention"}': "100x80",
        },
        at="15m",
    ),
    "TableGrowingWithoutRetention": Case(
        # promtool's clock starts at 0: retention last succeeded at 60 s, checked 50 h later.
        {
            'maintenance_last_success_timestamp_seconds{task="retention"}': "60x300",
            'process_start_time_seconds{job="backup"}': "0x300",
        },
        {},
        "No retention succeeded for 2d 1h 59m 0s",
        {'maintenance_last_success_timestamp_seconds{task="retention"}': "0+600x300"},
        at="50h",
        more_idle=(
            # A service started 1000 s ago that has not reached its first run (0: never).
            {
                'maintenance_last_success_timestamp_seconds{task="retention"}': "0x300",
                'process_start_time_seconds{job="backup"}': "179000x300",
            },
        ),
        interval="10m",
    ),
    "PostgresDown": Case(
        {'backup_postgres_up{job="backup", instance="backup"}': "1x20 0x20"},
        {},
        "PostgreSQL does not accept connections (the backup service cannot log in)",
        {'backup_postgres_up{job="backup", instance="backup"}': "1x40"},
    ),
    "PgBouncerDown": Case(
        {"pgbouncer_up": "1x20 0x20"},
        {},
        "PgBouncer does not answer (its exporter cannot reach the admin console)",
        {"pgbouncer_up": "1x40"},
    ),
}


def _series(values: dict[str, str]) -> list[dict[str, str]]:
    return [{"series": series, "values": given} for series, given in values.items()]


def _test(
    alert: Alert,
    series: dict[str, str],
    expected: list[dict[str, dict[str, str]]],
    at: str,
    interval: str = "15s",
) -> dict[str, object]:
    return {
        "interval": interval,
        "input_series": _series(series),
        "alert_rule_test": [{"eval_time": at, "alertname": alert.name, "exp_alerts": expected}],
    }


def test_generated_files_are_what_the_catalogue_generates() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "infra.observability", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout


def test_promtool_accepts_the_rules(promtool: Path) -> None:
    result = subprocess.run(
        [promtool, "check", "rules", str(RULES_FILE)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(ALERTS)} rules found" in result.stdout


def test_every_alert_has_a_unit_test() -> None:
    assert sorted(CASES) == sorted(alert.name for alert in ALERTS)


@pytest.mark.parametrize("alert", ALERTS, ids=lambda alert: alert.name)
def test_alert_fires_on_its_series_and_is_silent_on_idle_and_no_data(
    alert: Alert, tmp_path: Path, promtool: Path
) -> None:
    case = CASES[alert.name]
    fired = {
        "exp_labels": {**case.labels, "severity": alert.severity},
        "exp_annotations": {
            "summary": case.summary,
            "description": alert.meaning,
            "runbook": alert.runbook,
            "runbook_url": runbook_url(alert),
        },
    }
    suite = {
        "rule_files": [str(RULES_FILE)],
        "evaluation_interval": case.interval,
        "tests": [
            _test(alert, case.firing, [fired], case.at, case.interval),
            _test(alert, case.idle, [], case.at, case.interval),
            *(_test(alert, idle, [], case.at, case.interval) for idle in case.more_idle),
            _test(alert, {"some_other_metric": "1x40"}, [], case.at, case.interval),
        ],
    }
    path = tmp_path / "test.yml"
    path.write_text(yaml.safe_dump(suite))
    result = subprocess.run(
        [promtool, "test", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_the_scrape_configurations(promtool: Path, tmp_path: Path) -> None:
    """Compose's committed file, and the local stack's rendering of the same jobs."""
    local = tmp_path / "prometheus.yml"
    local.write_text(
        yaml.safe_dump(
            prometheus_config(local_targets(Ports(25430)), [str(RULES_FILE)], "1s", "x:9093")
        )
    )
    for config in (PROMETHEUS_FILE, local):
        result = subprocess.run(
            [promtool, "check", "config", str(config)], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr
