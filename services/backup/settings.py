"""The backup service's settings (prefix BACKUP_SERVICE_). The backup role's name and password
are BackupRoleSettings (BACKUP_USER, BACKUP_PASSWORD); the server it backs up is the one the
migrations reach directly (MIGRATE_HOST, MIGRATE_PORT, MIGRATE_DATABASE), never PgBouncer."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings

from services.core.settings import settings_config

from .errors import BackupError

DAY = 86400.0


class BackupServiceSettings(BaseSettings):
    # An empty variable is an unset one: compose.yaml passes the optional offsite settings
    # as ${OFFSITE_...:-}, empty when the operator has no offsite repository.
    model_config = settings_config("BACKUP_SERVICE_", env_ignore_empty=True)

    host: str = "127.0.0.1"
    port: int = 27431
    # The local stack's state directory: backups go to <state>/backups and the WAL archive is
    # <state>/wal-archive unless DIR and WAL_ARCHIVE say otherwise. No default: a service that
    # guessed would file one cluster's backups with another's.
    state_dir: Path | None = None
    dir: Path | None = None
    wal_archive: Path | None = None
    pg_bindir: Path = Path("/usr/lib/postgresql/15/bin")

    pg_host: str = Field("127.0.0.1", validation_alias="MIGRATE_HOST")
    pg_port: int = Field(25432, validation_alias="MIGRATE_PORT")
    pg_database: str = Field("botstack", validation_alias="MIGRATE_DATABASE")

    backup_interval_seconds: float = Field(DAY, gt=0)
    drill_interval_seconds: float = Field(7 * DAY, gt=0)
    # Retention: the newest backup of each of the last KEEP_DAILY days and of each of the last
    # KEEP_WEEKLY ISO weeks; the newest verified backup is always kept.
    keep_daily: int = Field(7, ge=1)
    keep_weekly: int = Field(4, ge=0)
    # Scratch PostgreSQL servers (drills, restores) listen on a free port in this range.
    scratch_port_min: int = Field(28500, ge=1024, le=65535)
    scratch_port_max: int = Field(28599, ge=1024, le=65535)
    # How long a restore waits for the live server to archive its current WAL segment.
    archive_wait_seconds: float = Field(60.0, gt=0)
    # How long a scratch server may take to replay the WAL and promote.
    recovery_timeout_seconds: float = Field(3600.0, gt=0)

    # Scheduled database maintenance (services.core.maintenance): ANALYZE every
    # ANALYZE_INTERVAL, a check every VACUUM_INTERVAL that vacuums (and reindexes) only the
    # tables with many dead rows, and retention every RETENTION_INTERVAL. Each step gives up a
    # lock it cannot get within MAINTENANCE_LOCK_TIMEOUT_MS (retried, then skipped).
    analyze_interval_seconds: float = Field(DAY, gt=0)
    vacuum_interval_seconds: float = Field(7 * DAY, gt=0)
    retention_interval_seconds: float = Field(DAY, gt=0)
    maintenance_lock_timeout_ms: int = Field(500, ge=1)
    # How long rows are kept: processed update ids for Telegram's 24 h redelivery window plus
    # this margin; sent and withdrawn outbox rows; conversation messages; audit entries;
    # backup_runs rows. Deleted RETENTION_BATCH rows per transaction.
    keep_updates_margin_hours: float = Field(24.0, ge=1)
    keep_outbox_days: float = Field(30.0, gt=0)
    keep_messages_days: float = Field(365.0, gt=0)
    keep_audit_days: float = Field(730.0, gt=0)
    keep_backup_runs_days: float = Field(180.0, gt=0)
    retention_batch: int = Field(1000, ge=1, le=100_000)

    # The offsite repository (docs/offsite-backups.md): pgBackRest's repo2 on S3-compatible
    # object storage, encrypted client-side (aes-256-cbc) with the passphrase in PASSPHRASE_FILE.
    # Off while ENDPOINT and BUCKET are unset; secrets only ever come from files.
    offsite_endpoint: str | None = None  # host[:port] of the S3 API
    offsite_bucket: str | None = None
    offsite_region: str = "us-east-1"
    offsite_uri_style: Literal["path", "host"] = "path"
    offsite_path: str = "/botstack"  # the repository's prefix inside the bucket
    offsite_key_file: Path | None = None
    offsite_secret_file: Path | None = None
    offsite_passphrase_file: Path | None = None
    # A CA bundle for the endpoint's certificate (a self-hosted store); default: the system's.
    offsite_ca_file: Path | None = None
    offsite_stanza: str = "botstack"
    pgbackrest: Path = Path("/usr/bin/pgbackrest")
    # How long one WAL push may take: pgBackRest retries an unreachable store for minutes,
    # which would hold up the schedule (local backups too) for the whole outage.
    offsite_push_timeout_seconds: float = Field(120.0, gt=0)
    # The live data directory and socket directory pgBackRest backs up from (same host).
    # Default: <state>/pgdata and <state>/run, the local stack's.
    pgdata: Path | None = None
    pg_socket_dir: Path | None = None
    # Offsite schedule: a full backup every FULL_INTERVAL, a differential one every
    # DIFF_INTERVAL in between, each verified; full backups kept in the offsite repository.
    offsite_full_interval_seconds: float = Field(7 * DAY, gt=0)
    offsite_diff_interval_seconds: float = Field(DAY, gt=0)
    offsite_retention_full: int = Field(4, ge=1, le=9999999)
    # The disaster drill (restore from the offsite repository alone), rarer than the drill.
    disaster_drill_interval_seconds: float = Field(30 * DAY, gt=0)

    @model_validator(mode="after")
    def _offsite(self) -> BackupServiceSettings:
        if (self.offsite_endpoint is None) != (self.offsite_bucket is None):
            raise ValueError(
                "set both BACKUP_SERVICE_OFFSITE_ENDPOINT and BACKUP_SERVICE_OFFSITE_BUCKET "
                "(or neither: no offsite copy)"
            )
        if self.offsite_configured:
            missing = [
                f"BACKUP_SERVICE_OFFSITE_{name.upper()}_FILE"
                for name in ("key", "secret", "passphrase")
                if getattr(self, f"offsite_{name}_file") is None
            ]
            if missing:
                raise ValueError(f"the offsite repository needs {', '.join(missing)}")
        return self

    @property
    def offsite_configured(self) -> bool:
        return self.offsite_endpoint is not None and self.offsite_bucket is not None

    @property
    def offsite_dir(self) -> Path:
        """pgBackRest's configuration, lock, log and spool for the offsite repository."""
        return self.backup_dir / "offsite"

    @property
    def live_pgdata(self) -> Path:
        return self._path(self.pgdata, "pgdata", "BACKUP_SERVICE_PGDATA")

    @property
    def live_socket_dir(self) -> Path:
        return self._path(self.pg_socket_dir, "run", "BACKUP_SERVICE_PG_SOCKET_DIR")

    @model_validator(mode="after")
    def _ports(self) -> BackupServiceSettings:
        if self.scratch_port_min > self.scratch_port_max:
            raise ValueError("BACKUP_SERVICE_SCRATCH_PORT_MIN is above SCRATCH_PORT_MAX")
        return self

    @property
    def configured(self) -> bool:
        return self.state_dir is not None or (self.dir is not None and self.wal_archive is not None)

    @property
    def backup_dir(self) -> Path:
        return self._path(self.dir, "backups", "BACKUP_SERVICE_DIR")

    @property
    def archive_dir(self) -> Path:
        return self._path(self.wal_archive, "wal-archive", "BACKUP_SERVICE_WAL_ARCHIVE")

    def _path(self, explicit: Path | None, in_state_dir: str, variable: str) -> Path:
        if explicit is not None:
            return explicit.resolve()
        if self.state_dir is not None:
            return (self.state_dir / in_state_dir).resolve()
        raise BackupError(
            f"set BACKUP_SERVICE_STATE_DIR (the stack's state directory) or {variable}"
        )
