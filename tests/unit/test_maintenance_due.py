"""When the backup service's scheduler runs a maintenance job again (services/backup/
maintenance.py): a job that failed must not wait a whole interval to be retried, or a
transient failure (PostgreSQL restarting) keeps MaintenanceFailing firing for a day."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client import CollectorRegistry

from services.backup.maintenance import Maintenance, MaintenanceMetrics
from services.backup.settings import BackupServiceSettings


def _maintenance(tmp_path: Path, retention: dict[str, object] | None) -> Maintenance:
    settings = BackupServiceSettings(state_dir=tmp_path, retention_interval_seconds=86400)
    settings.backup_dir.mkdir(parents=True, exist_ok=True)
    if retention is not None:
        (settings.backup_dir / "last-maintenance.json").write_text(
            json.dumps({"retention": retention})
        )
    return Maintenance(settings, None, MaintenanceMetrics(CollectorRegistry()))  # type: ignore[arg-type]


NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
AN_HOUR_AGO = (NOW - timedelta(hours=1)).isoformat()


def test_a_job_never_run_is_due(tmp_path: Path) -> None:
    assert _maintenance(tmp_path, None).due("retention", NOW)


def test_a_job_that_succeeded_waits_its_interval(tmp_path: Path) -> None:
    record = {"started_at": AN_HOUR_AGO, "succeeded": True, "finished_at_epoch": 0}
    maintenance = _maintenance(tmp_path, record)
    assert not maintenance.due("retention", NOW)
    assert maintenance.due("retention", NOW + timedelta(hours=23))


def test_a_job_that_failed_is_due_again_at_once(tmp_path: Path) -> None:
    record = {"started_at": AN_HOUR_AGO, "succeeded": False, "error": "connection refused"}
    assert _maintenance(tmp_path, record).due("retention", NOW)
