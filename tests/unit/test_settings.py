"""Settings: development works with no configuration; elsewhere default secrets are refused."""

from __future__ import annotations

from pathlib import Path

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


def test_secrets_are_read_from_docker_secret_files(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """compose.yaml mounts each secret as /run/secrets/<variable in lower case>."""
    from services.bot.settings import BotSettings

    monkeypatch.setenv("APP_ENVIRONMENT", "production")
    monkeypatch.delenv("DB_PASSWORD", raising=False)
    monkeypatch.delenv("BOT_WEBHOOK_SECRET", raising=False)
    monkeypatch.delenv("BOT_TOKEN", raising=False)
    (tmp_path / "db_password").write_text("s3cret-from-a-docker-secret")
    (tmp_path / "bot_token").write_text("123456:" + "x" * 35)
    (tmp_path / "bot_webhook_secret").write_text("A" * 40)
    assert (
        DatabaseSettings(_secrets_dir=tmp_path).password.get_secret_value()
        == "s3cret-from-a-docker-secret"
    )
    bot = BotSettings(_secrets_dir=tmp_path)
    assert bot.webhook_secret.get_secret_value() == "A" * 40
    assert bot.token.get_secret_value() == "123456:" + "x" * 35
    # The environment wins over a file.
    monkeypatch.setenv("DB_PASSWORD", "s3cret-from-the-environment")
    assert (
        DatabaseSettings(_secrets_dir=tmp_path).password.get_secret_value()
        == "s3cret-from-the-environment"
    )


def test_compose_without_an_offsite_repository_runs_as_before(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # compose.yaml passes the optional offsite settings as ${OFFSITE_...:-}: empty is unset,
    # while the secret files' paths are always set (the files exist, maybe empty).
    from services.backup.offsite import offsite_health
    from services.backup.settings import BackupServiceSettings

    for name in ("ENDPOINT", "BUCKET", "CA_FILE"):
        monkeypatch.setenv(f"BACKUP_SERVICE_OFFSITE_{name}", "")
    for name, secret in (("KEY", "access_key"), ("SECRET", "secret_key"), ("PASSPHRASE", "pass")):
        monkeypatch.setenv(f"BACKUP_SERVICE_OFFSITE_{name}_FILE", f"/run/secrets/offsite_{secret}")
    settings = BackupServiceSettings()
    assert not settings.offsite_configured and settings.offsite_ca_file is None
    assert offsite_health(settings)["status"] == "NOT CONFIGURED"
    monkeypatch.setenv("BACKUP_SERVICE_OFFSITE_ENDPOINT", "object-store:8333")
    with pytest.raises(ValidationError, match="BACKUP_SERVICE_OFFSITE_BUCKET"):
        BackupServiceSettings()
