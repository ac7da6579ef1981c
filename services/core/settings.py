"""Settings, one class per concern, each with its own environment prefix.

Secrets have development defaults so `make up` works with no configuration; outside
development (APP_ENVIRONMENT=production or staging) a default or empty secret is refused at
start-up with a message that names the variable to set.

Every setting can also be a file in /run/secrets named after its variable (`db_password` for
DB_PASSWORD): how Docker secrets reach a container without appearing in its environment.
A variable set in the environment wins over the file.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The development default of every secret; refused outside development.
DEV_SECRET = "change-me-dev-only"
# Outside development a secret this short is refused as guessable.
MIN_SECRET_LENGTH = 16


class Environment(StrEnum):
    DEVELOPMENT = "development"
    STAGING = "staging"
    PRODUCTION = "production"


class InsecureSettingsError(ValueError):
    """A secret still has its development default (or is empty) outside development."""


# Where Docker mounts a container's secrets; absent outside a container (pydantic-settings
# warns about a missing directory, so it is only named when it is there).
SECRETS_DIR = Path("/run/secrets")


def settings_config(prefix: str, *, env_ignore_empty: bool = False) -> SettingsConfigDict:
    """The configuration of every settings class: its prefix, the environment, and secrets."""
    return SettingsConfigDict(
        env_prefix=prefix,
        env_file=None,
        extra="ignore",
        frozen=True,
        secrets_dir=SECRETS_DIR if SECRETS_DIR.is_dir() else None,
        env_ignore_empty=env_ignore_empty,
    )


class AppSettings(BaseSettings):
    model_config = settings_config("APP_")

    # development, staging or production: outside development, development secrets are refused.
    environment: Environment = Environment.DEVELOPMENT
    # The services' log level (Python logging's names).
    log_level: str = "INFO"


def _refuse_default_secrets(settings: BaseSettings, prefix: str, *names: str) -> None:
    environment = AppSettings().environment
    if environment is Environment.DEVELOPMENT:
        return
    bad = []
    for name in names:
        value = getattr(settings, name).get_secret_value().strip()
        if value == DEV_SECRET or len(value) < MIN_SECRET_LENGTH:
            bad.append(f"{prefix}{name.upper()}")
    if bad:
        raise InsecureSettingsError(
            f"a default, empty or short secret is refused in {environment}: set "
            f"{', '.join(bad)} (at least {MIN_SECRET_LENGTH} characters, not the development "
            "value)"
        )


class DatabaseSettings(BaseSettings):
    """How a service (bot, admin-api) reaches PostgreSQL: through PgBouncer, transaction mode."""

    model_config = settings_config("DB_")

    # PgBouncer's address, and the database as PgBouncer names it.
    host: str = "127.0.0.1"
    port: int = 26432
    name: str = "botstack"
    # The services' role: rows only, no DDL (the migrations grant to it), and its password.
    user: str = "app"
    password: SecretStr = SecretStr(DEV_SECRET)
    # Sized for a 2 GB host: every service gets at most pool_size + max_overflow connections
    # to PgBouncer, which multiplexes them onto a small server pool. All of them are kept
    # (no overflow): an idle client connection costs PgBouncer almost nothing, while opening
    # one (TCP, SCRAM, type introspection, statements prepared again) cost the bot 4% of its
    # CPU under load when overflow connections were closed and reopened as the rate wavered.
    pool_size: int = Field(10, ge=1, le=50)
    max_overflow: int = Field(0, ge=0, le=50)
    # Seconds to wait for a free pooled connection before failing with DatabaseUnavailable.
    pool_timeout: float = Field(5.0, gt=0)
    # Seconds to establish a connection; a dead database fails fast instead of hanging.
    connect_timeout: float = Field(3.0, gt=0)
    # Seconds a single statement may run before it is cancelled.
    statement_timeout: float = Field(30.0, gt=0)
    # True for PgBouncer >= 1.21 with max_prepared_statements > 0 (protocol-level prepared
    # statements): asyncpg's statement cache is on. False for older PgBouncer (1.18): no
    # statement cache and a unique name for every prepared statement.
    prepared_statements: bool = True

    @model_validator(mode="after")
    def _secrets(self) -> DatabaseSettings:
        _refuse_default_secrets(self, "DB_", "password")
        return self


class MigrationSettings(BaseSettings):
    """The migration role: owns the schema, connects to PostgreSQL directly (never PgBouncer)."""

    model_config = settings_config("MIGRATE_")

    # PostgreSQL's own address (migrations and backups never go through PgBouncer).
    host: str = "127.0.0.1"
    port: int = 25432
    database: str = "botstack"
    # The role that owns the schema, and its password.
    user: str = "migrator"
    password: SecretStr = SecretStr(DEV_SECRET)
    # The services' role the migrations grant row access to: the same variable the services
    # log in with, so the two cannot drift apart.
    app_role: str = Field("app", validation_alias="DB_USER")

    @model_validator(mode="after")
    def _secrets(self) -> MigrationSettings:
        _refuse_default_secrets(self, "MIGRATE_", "password")
        return self


class BackupRoleSettings(BaseSettings):
    """The backup role (REPLICATION); the backup service connects with it directly."""

    model_config = settings_config("BACKUP_")

    user: str = "backup"
    password: SecretStr = SecretStr(DEV_SECRET)

    @model_validator(mode="after")
    def _secrets(self) -> BackupRoleSettings:
        _refuse_default_secrets(self, "BACKUP_", "password")
        return self


class MonitorRoleSettings(BaseSettings):
    """The monitoring role (pg_monitor and nothing more): postgres_exporter logs in with it."""

    model_config = settings_config("MONITOR_")

    user: str = "monitor"
    password: SecretStr = SecretStr(DEV_SECRET)

    @model_validator(mode="after")
    def _secrets(self) -> MonitorRoleSettings:
        _refuse_default_secrets(self, "MONITOR_", "password")
        return self


class PgBouncerSettings(BaseSettings):
    """The PgBouncer stats user, read by the metrics exporter through the admin console."""

    model_config = settings_config("PGBOUNCER_")

    stats_user: str = "pgbouncer_stats"
    stats_password: SecretStr = SecretStr(DEV_SECRET)

    @model_validator(mode="after")
    def _secrets(self) -> PgBouncerSettings:
        _refuse_default_secrets(self, "PGBOUNCER_", "stats_password")
        return self
