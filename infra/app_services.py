"""The project's own Python services in the local stack (Telegram stand-in, bot, admin API,
backup service): background processes on loopback ports, each started by `up` after the
database is ready and considered up once its liveness endpoint answers.

Each gets only the settings it reads (the bot never sees the migration role's password), and
runs as the unprivileged user infra/service_runtime.py picks when the stack is started by
root; infra/processes.py supervises them (a port some other program holds is refused by
name, so a stranger answering /health/live is never taken for the service)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from infra.processes import Placement, Supervised, unplaced
from infra.service_runtime import Runtime
from infra.stack_state import HOST, Layout, Ports

# Every settings prefix of services/ (services/core/settings.py and each service's own): a
# variable with one of them reaches only the services that declare it in `reads`.
SETTINGS_PREFIXES = (
    "APP_",
    "DB_",
    "MIGRATE_",
    "BACKUP_",
    "PGBOUNCER_",
    "BOT_",
    "ADMIN_API_",
    "TELEGRAM_API_",
)


@dataclass(frozen=True)
class AppService:
    name: str  # label, and the stem of its pid and log files
    module: str  # run as `python -m module`
    env_prefix: str  # its settings' prefix: the stack sets <prefix>HOST and <prefix>PORT
    port_offset: int  # its port is Ports.app(port_offset)
    endpoint: str  # its URL's key in endpoints.json
    # The settings variables it reads: prefixes (ending in _) or whole names.
    reads: tuple[str, ...]
    endpoint_path: str = ""  # appended to its base URL in endpoints.json
    # The variable the services started after it read its base URL from, if any.
    url_variable: str | None = None
    health_path: str = "/health/live"
    # Health and metrics on a port of their own (prefix for its HOST/PORT, port offset, and
    # the key of its URL in endpoints.json), when the main port is published.
    ops: tuple[str, int, str] | None = None
    # Runs as the user that runs PostgreSQL (the backup service runs its programs).
    as_postgres_user: bool = False

    def environment(self, environment: Mapping[str, str]) -> dict[str, str]:
        """environment without the settings of other services."""
        return {
            name: value
            for name, value in environment.items()
            if not name.startswith(SETTINGS_PREFIXES)
            or any(name == r or (r.endswith("_") and name.startswith(r)) for r in self.reads)
        }


# In start order; a service may rely on those before it being up.
APP_SERVICES: tuple[AppService, ...] = (
    # The Telegram Bot API stand-in: the bot talks to it unless BOT_API_URL says otherwise.
    AppService(
        "telegram-api",
        "services.telegram_api",
        "TELEGRAM_API_",
        3,
        "telegram_api_url",
        reads=("TELEGRAM_API_",),
        url_variable="BOT_API_URL",
    ),
    AppService(
        "bot",
        "services.bot",
        "BOT_WEBHOOK_",
        2,
        "bot_webhook_url",
        reads=("APP_", "BOT_", "DB_"),
        endpoint_path="/telegram/webhook",
        ops=("BOT_METRICS_", 4, "bot_metrics_url"),
    ),
    AppService(
        "admin-api",
        "services.admin_api",
        "ADMIN_API_",
        0,
        "admin_api_url",
        ("APP_", "ADMIN_API_", "DB_"),
    ),
    AppService(
        "backup",
        "services.backup",
        "BACKUP_SERVICE_",
        1,
        "backup_url",
        # MIGRATE_: the scheduled VACUUM, ANALYZE and REINDEX run as the tables' owner.
        reads=("APP_", "BACKUP_", "DB_", "MIGRATE_"),
        as_postgres_user=True,
    ),
)


class AppServiceProcess:
    def __init__(self, paths: Layout, ports: Ports, service: AppService) -> None:
        self.service = service
        self.name = service.name
        self.port = ports.app(service.port_offset)
        self.url = f"http://{HOST}:{self.port}"
        self.ops_port = ports.app(service.ops[1]) if service.ops else None
        self.ops_url = f"http://{HOST}:{self.ops_port}" if self.ops_port else self.url
        self.process = Supervised(
            service.name,
            service.module,
            (self.port,) if self.ops_port is None else (self.port, self.ops_port),
            self.ops_url + service.health_path,
            paths.run / f"{service.name}.pid",
            paths.logs / f"{service.name}.log",
        )

    def pid(self) -> int | None:
        return self.process.pid()

    def start(
        self, environment: Mapping[str, str], runtime: Runtime, placement: Placement = unplaced
    ) -> None:
        prefix = self.service.env_prefix
        env = {**environment, f"{prefix}HOST": HOST, f"{prefix}PORT": str(self.port)}
        if self.service.ops is not None:
            ops_prefix = self.service.ops[0]
            env |= {f"{ops_prefix}HOST": HOST, f"{ops_prefix}PORT": str(self.ops_port)}
        account = runtime.postgres_user if self.service.as_postgres_user else runtime.app_user
        self.process.start(
            [runtime.python, "-m", self.service.module],
            self.service.environment(env),
            account,
            placement=placement,
        )

    def stop(self) -> None:
        self.process.stop()
