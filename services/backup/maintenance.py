"""The scheduled database jobs (retention, daily ANALYZE, weekly VACUUM and REINDEX of what
needs it), run by the scheduler: each run recorded in <backups>/last-maintenance.json (rows
removed per table, seconds, outcome) and exported as metrics."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from services.core.db import Database
from services.core.maintenance import vacuum
from services.core.maintenance.connect import Unreachable, as_owner
from services.core.maintenance.retention import Periods, apply_retention

from .errors import BackupError
from .settings import BackupServiceSettings

log = logging.getLogger("services.backup")
JOBS = ("retention", "analyze", "vacuum")
Clock = Callable[[], datetime]


class MaintenanceMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.last_success = Gauge(
            "maintenance_last_success_timestamp_seconds",
            "When each scheduled maintenance job last succeeded (0: never)",
            ["task"],
            registry=registry,
        )
        self.last_failure = Gauge(
            "maintenance_last_failure_timestamp_seconds",
            "When each scheduled maintenance job last failed (0: never)",
            ["task"],
            registry=registry,
        )
        self.duration = Gauge(
            "maintenance_last_duration_seconds",
            "How long each maintenance job's last run took",
            ["task"],
            registry=registry,
        )
        self.removed = Counter(
            "retention_rows_removed",
            "Rows deleted by retention, per table",
            ["table"],
            registry=registry,
        )
        for job in JOBS:
            self.last_success.labels(job)
            self.last_failure.labels(job)


def periods(settings: BackupServiceSettings) -> Periods:
    return Periods(
        update_margin=timedelta(hours=settings.keep_updates_margin_hours),
        outbox=timedelta(days=settings.keep_outbox_days),
        messages=timedelta(days=settings.keep_messages_days),
        audit=timedelta(days=settings.keep_audit_days),
        backup_runs=timedelta(days=settings.keep_backup_runs_days),
    )


class Maintenance:
    def __init__(
        self,
        settings: BackupServiceSettings,
        database: Database,
        metrics: MaintenanceMetrics,
        clock: Clock = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.database = database
        self.metrics = metrics
        self.clock = clock
        if settings.configured:
            for job, run in self.records().items():
                if run.get("succeeded"):
                    self.metrics.last_success.labels(job).set(run["finished_at_epoch"])

    @property
    def record_path(self) -> Path:
        return self.settings.backup_dir / "last-maintenance.json"

    def records(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.record_path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def due(self, job: str, now: datetime) -> bool:
        last = self.records().get(job)
        interval = {
            "retention": self.settings.retention_interval_seconds,
            "analyze": self.settings.analyze_interval_seconds,
            "vacuum": self.settings.vacuum_interval_seconds,
        }[job]
        # A failed run is due again at once: the scheduler paces retries (RETRY_SECONDS), and
        # waiting a whole interval left MaintenanceFailing firing for a day after one failure.
        if last is None or not last.get("succeeded"):
            return True
        return datetime.fromisoformat(last["started_at"]) + timedelta(seconds=interval) <= now

    async def run(self, job: str) -> dict[str, Any]:
        """Run one job now, record it, and raise BackupError when it failed."""
        started, clock = self.clock(), time.monotonic()
        record: dict[str, Any] = {"started_at": started.isoformat()}
        try:
            record |= await getattr(self, f"_{job}")()
            record["succeeded"] = not record.get("failed_steps")
        except (Unreachable, OSError) as error:
            record |= {"succeeded": False, "error": str(error)}
        seconds = round(time.monotonic() - clock, 3)
        record["seconds"] = seconds
        record["finished_at_epoch"] = started.timestamp() + seconds
        self.metrics.duration.labels(job).set(seconds)
        gauge = self.metrics.last_success if record["succeeded"] else self.metrics.last_failure
        gauge.labels(job).set(record["finished_at_epoch"])
        self.record_path.write_text(json.dumps(self.records() | {job: record}, indent=2))
        log.info("maintenance %s: %s", job, json.dumps(record))
        if not record["succeeded"]:
            raise BackupError(f"maintenance {job} failed: {record.get('error', record)}")
        return record

    async def _retention(self) -> dict[str, Any]:
        from services.core.errors import CoreError

        try:
            report = await apply_retention(
                self.database,
                periods(self.settings),
                self.clock(),
                batch_size=self.settings.retention_batch,
            )
        except CoreError as error:
            return {"error": str(error), "failed_steps": ["retention"]}
        for table, count in report.removed.items():
            self.metrics.removed.labels(table).inc(count)
        return {"removed": report.removed, "table_seconds": report.seconds}

    async def _analyze(self) -> dict[str, Any]:
        async with as_owner() as connection:
            report = await vacuum.run(
                connection, ["analyze"], await vacuum.tables(connection), self._limits()
            )
        return self._steps(report)

    async def _vacuum(self) -> dict[str, Any]:
        """VACUUM, then REINDEX CONCURRENTLY, of the tables with many dead rows only."""
        async with as_owner() as connection:
            tables = await vacuum.needing_vacuum(connection)
            report = await vacuum.run(connection, ["vacuum", "reindex"], tables, self._limits())
        return self._steps(report)

    def _limits(self) -> vacuum.Limits:
        return vacuum.Limits(lock_timeout_ms=self.settings.maintenance_lock_timeout_ms)

    @staticmethod
    def _steps(report: vacuum.MaintenanceReport) -> dict[str, Any]:
        return {
            "steps": [step.__dict__ for step in report.steps],
            "skipped_steps": [f"{s.operation} {s.table}" for s in report.skipped],
            "failed_steps": [f"{s.operation} {s.table}: {s.detail}" for s in report.failed],
        }
