"""Settings: development works with no configuration; elsewhere default secrets are refused."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.core.settings import (
    DEV_SECRET,
    BackupRoleSettings,
    DatabaseSettings,
    MigrationSettings,
    PgBouncerSettings,
)


def test_development_defaults_fit_a_small_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("APP_ENVIRONMENT", raising=False)
    settings = DatabaseSettings()
    assert settings.pool_size + settings.max_overflow <= 10
    assert settings.prepared_statements is True


@pytest.mark.parametrize(
    ("settings_class", "variable"),
    [
        (DatabaseSettings, "DB_PASSWORD"),
        (MigrationSettings, "MIGRATE_PASSWORD"),
        (BackupRoleSettings, "BACKUP_PASSWORD"),
        (PgBouncerSettings, "PGBOUNCER_STATS_PASSWORD"),
    ],
)
@pytest.mark.parametrize("secret", [None, "", "   ", "short", DEV_SECRET])
def test_production_refuses_default_or_empty_secrets(
    monkeypatch: pytest.MonkeyPatch, settings_class: type, variable: str, secret: str | None
) -> None:
    monkeypatch.setenv("APP_ENVIRONMENT", "production")
    if secret is None:
        monkeypatch.delenv(variable, raising=False)
    else:
        monkeypatch.setenv(variable, secret)
    with pytest.raises(ValidationError, match=f"set {variable}"):
        settings_class()


def test_production_accepts_real_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_ENVIRONMENT", "production")
    monkeypatch.setenv("DB_PASSWORD", "s3cret-from-the-vault")
    monkeypatch.setenv("DB_POOL_SIZE", "3")
    settings = DatabaseSettings()
    assert settings.password.get_secret_value() == "s3cret-from-the-vault"
    assert settings.pool_size == 3


def test_migrations_grant_to_the_role_services_log_in_with(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DB_USER", "bot_rw")
    assert MigrationSettings().app_role == "bot_rw"
