"""`botstack config`: each settings class of each service, every field's effective value and
where it came from. Secrets (SecretStr fields) are masked: the value is never printed."""

from __future__ import annotations

import os
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic_settings import BaseSettings

from services.core.entry import variables
from services.core.settings import SECRETS_DIR

from .environment import FROM_STATE_FILE


def _classes() -> list[tuple[str, type[BaseSettings]]]:
    from services.admin_api.settings import AdminApiSettings
    from services.backup.settings import BackupServiceSettings
    from services.bot.settings import BotSettings
    from services.core import settings as core
    from services.telegram_api.settings import TelegramAPISettings

    return [
        ("app", core.AppSettings),
        ("database", core.DatabaseSettings),
        ("migrations", core.MigrationSettings),
        ("backup-role", core.BackupRoleSettings),
        ("monitor-role", core.MonitorRoleSettings),
        ("pgbouncer", core.PgBouncerSettings),
        ("bot", BotSettings),
        ("admin-api", AdminApiSettings),
        ("backup", BackupServiceSettings),
        ("telegram-api", TelegramAPISettings),
    ]


def _source(variable: str) -> str:
    if variable in FROM_STATE_FILE:
        return "env file"
    if variable in os.environ:
        return "environment"
    if (SECRETS_DIR / variable.lower()).is_file():
        return "secret file"
    return "default"


def _shown(value: Any) -> str:
    if isinstance(value, SecretStr):
        return "******" if value.get_secret_value() else "(empty)"
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    if isinstance(value, tuple | list):
        return ",".join(map(str, value))
    return "unset" if value is None else str(value)


def report() -> list[dict[str, str]]:
    rows = []
    for service, cls in _classes():
        try:
            settings: BaseSettings | None = cls()
        except Exception as error:  # a refused setting is reported, not raised
            settings = None
            rows.append(
                {
                    "service": service,
                    "variable": "-",
                    "value": f"refused: {type(error).__name__}",
                    "source": "-",
                }
            )
        for (variable, _), name in zip(variables(cls), cls.model_fields, strict=True):
            value = getattr(settings, name) if settings is not None else None
            rows.append(
                {
                    "service": service,
                    "variable": variable,
                    "value": _shown(value),
                    "source": _source(variable),
                }
            )
    return rows
