"""The backup service's Prometheus metrics, read at scrape time from the catalogue on the backup
volume, the last drill's record, the WAL archive's files and pg_stat_archiver on the live
server (so they are right after a restart, and whoever took the backup: the scheduler or an
operator).

pg_stat_archiver starts again from zero (and forgets the last archived file) when PostgreSQL
crashes, so what must not go blank after a crash comes from the archive itself: when the
newest file arrived and how many it holds. The archiver's counters are kept monotonic across
such a reset."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from . import archive
from .catalogue import Catalogue, Verification
from .disaster import load_last_disaster_drill
from .drill import load_last_drill
from .errors import BackupError
from .live import ArchiverStats, LiveServer
from .offsite import load_state, offsite_lag
from .settings import BackupServiceSettings

log = logging.getLogger("services.backup")


class BackupCollector(Collector):
    def __init__(self, settings: BackupServiceSettings, live: LiveServer) -> None:
        self.settings = settings
        self.live = live
        self.archiver: ArchiverStats | None = None
        # The archiver's counts before PostgreSQL last reset them, and the last counts seen.
        self._offset = (0, 0)
        self._seen = (0, 0)
        self.current_lsn: str | None = None

    async def refresh(self) -> None:
        """Read pg_stat_archiver before a scrape; None when the server cannot be reached."""
        try:
            self.archiver = await self.live.archiver()
            self.current_lsn = await self.live.current_lsn()
        except BackupError as error:
            log.warning("metrics: %s", error)
            self.archiver = None
            self.current_lsn = None
            return
        counts = (self.archiver.archived_count, self.archiver.failed_count)
        if counts[0] < self._seen[0] or counts[1] < self._seen[1]:
            self._offset = (self._offset[0] + self._seen[0], self._offset[1] + self._seen[1])
        self._seen = counts

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        if self.settings.configured:
            yield from self._backups()
            yield from self._drill()
            yield from self._offsite(datetime.now(UTC))
            yield from self._disaster_drill()
        yield from self._archiver(datetime.now(UTC))

    def _backups(self) -> Iterator[GaugeMetricFamily]:
        backups = Catalogue(self.settings.backup_dir).backups()
        count = GaugeMetricFamily(
            "backup_base_backups", "Catalogued base backups by verification", labels=["state"]
        )
        for state in Verification:
            count.add_metric([state.value], sum(b.verification is state for b in backups))
        yield count
        verified = [b for b in backups if b.verification is Verification.VERIFIED]
        if not verified:
            return
        newest = verified[-1]
        yield _repository_verified("local", newest.finished_at.timestamp())
        yield GaugeMetricFamily(
            "backup_last_success_timestamp_seconds",
            "When the newest verified base backup finished (Unix time)",
            newest.finished_at.timestamp(),
        )
        yield GaugeMetricFamily(
            "backup_last_duration_seconds",
            "How long the newest verified base backup took, verification included",
            newest.duration_seconds,
        )
        yield GaugeMetricFamily(
            "backup_last_size_bytes", "Size of the newest verified base backup", newest.size_bytes
        )

    def _drill(self) -> Iterator[GaugeMetricFamily]:
        drill = load_last_drill(self.settings)
        if drill is None:
            return
        yield GaugeMetricFamily(
            "backup_drill_last_success",
            "1 when the last restore drill passed, else 0",
            1.0 if drill.succeeded else 0.0,
        )
        yield GaugeMetricFamily(
            "backup_drill_last_timestamp_seconds",
            "When the last restore drill started (Unix time)",
            drill.started_at.timestamp(),
        )
        yield GaugeMetricFamily(
            "backup_drill_last_duration_seconds",
            "How long the last restore drill took",
            drill.duration_seconds,
        )

    def _offsite(self, now: datetime) -> Iterator[GaugeMetricFamily]:
        configured = self.settings.offsite_configured
        yield GaugeMetricFamily(
            "backup_offsite_configured",
            "1 when an offsite repository is configured (BACKUP_SERVICE_OFFSITE_*), else 0: "
            "every copy is on this machine",
            1.0 if configured else 0.0,
        )
        if not configured:
            return
        state = load_state(self.settings)
        lag = offsite_lag(self.settings, state, self.current_lsn, now.timestamp())
        yield GaugeMetricFamily(
            "backup_offsite_lag_seconds",
            "How long the oldest archived WAL file not yet offsite has waited (0: all shipped)",
            lag.seconds,
        )
        if lag.bytes is not None:
            yield GaugeMetricFamily(
                "backup_offsite_lag_bytes",
                "WAL written by the live server past the newest segment offsite",
                lag.bytes,
            )
        yield GaugeMetricFamily(
            "backup_offsite_ship_failing",
            "1 when the last attempt to ship WAL offsite failed",
            1.0 if state.last_ship_error else 0.0,
        )
        if state.last_verified_at is not None:
            yield _repository_verified("offsite", state.last_verified_at)
        if state.last_verify_ok is not None:
            yield GaugeMetricFamily(
                "backup_offsite_verify_last_success",
                "1 when the last verify of the offsite repository passed, else 0",
                1.0 if state.last_verify_ok else 0.0,
            )

    def _disaster_drill(self) -> Iterator[GaugeMetricFamily]:
        drill = load_last_disaster_drill(self.settings)
        if drill is None:
            return
        yield GaugeMetricFamily(
            "backup_disaster_drill_last_success",
            "1 when the last disaster drill (restore from the offsite copy alone) passed",
            1.0 if drill.succeeded else 0.0,
        )
        yield GaugeMetricFamily(
            "backup_disaster_drill_last_timestamp_seconds",
            "When the last disaster drill started (Unix time)",
            drill.started_at.timestamp(),
        )
        if drill.rpo_seconds is not None:
            yield GaugeMetricFamily(
                "backup_disaster_drill_rpo_seconds",
                "RPO of the last passed disaster drill: commits the offsite copy lacked",
                drill.rpo_seconds,
            )
        if drill.rto_seconds is not None:
            yield GaugeMetricFamily(
                "backup_disaster_drill_rto_seconds",
                "RTO of the last passed disaster drill: empty directory to accepting connections",
                drill.rto_seconds,
            )

    def _archiver(self, now: datetime) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        stats = self.archiver
        yield GaugeMetricFamily(
            "backup_postgres_up",
            "1 when the live PostgreSQL answered the backup role at the last scrape",
            0.0 if stats is None else 1.0,
        )
        if self.settings.configured:
            yield from self._archive(now)
        if stats is None:
            return
        yield CounterMetricFamily(
            "backup_wal_archived",
            "WAL files archived (pg_stat_archiver.archived_count, monotonic across crashes)",
            self._offset[0] + stats.archived_count,
        )
        yield CounterMetricFamily(
            "backup_wal_archive_failed",
            "Failed archive_command attempts (pg_stat_archiver.failed_count, monotonic)",
            self._offset[1] + stats.failed_count,
        )
        failing = stats.last_failed_at is not None and (
            stats.last_archived_at is None or stats.last_failed_at > stats.last_archived_at
        )
        yield GaugeMetricFamily(
            "backup_wal_archive_failing",
            "1 when the newest archive attempt failed (archiving is stuck and retrying)",
            1.0 if failing else 0.0,
        )

    def _archive(self, now: datetime) -> Iterator[GaugeMetricFamily]:
        count, newest = archive.summary(self.settings.archive_dir)
        yield GaugeMetricFamily("backup_wal_archive_files", "Files in the WAL archive", count)
        if newest is None:
            return
        yield GaugeMetricFamily(
            "backup_wal_last_archived_timestamp_seconds",
            "When the newest file arrived in the WAL archive (Unix time)",
            newest.archived_at,
        )
        yield GaugeMetricFamily(
            "backup_wal_seconds_since_last_archived",
            "Seconds since the newest file arrived in the WAL archive",
            max(0.0, now.timestamp() - newest.archived_at),
        )


def _repository_verified(repository: str, timestamp: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(
        "backup_repository_newest_verified_timestamp_seconds",
        "When the newest verified backup in each repository finished (Unix time)",
        labels=["repository"],
    )
    family.add_metric([repository], timestamp)
    return family


class JobMetrics:
    """What the scheduler did: runs and failures per job (backup, retention, drill)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.runs = Counter(
            "backup_job_runs",
            "Scheduled jobs run, by task and outcome (not `job`: the scrape sets that)",
            ["task", "outcome"],
            registry=registry,
        )
