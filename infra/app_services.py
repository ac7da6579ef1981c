"""The project's own Python services in the local stack (Telegram stand-in, bot, admin API,
backup service): background processes on loopback ports, each started by `up` after the
database is ready and considered up once its liveness endpoint answers.

Each gets only the settings it reads (the bot never sees the migration role's password), and
runs as the unprivileged user infra/service_runtime.py picks when the stack is started by
root. A port some other program holds is refused by name before anything starts, so a
stranger answering /health/live is never taken for the service."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from infra.service_runtime import REPO_ROOT, Runtime
from infra.stack_state import HOST, Layout, Ports
from infra.system import StackError, shown

log = logging.getLogger("infra.stack")

READY_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 15.0
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
        reads=("APP_", "BACKUP_", "DB_", "MIGRATE_HOST", "MIGRATE_PORT", "MIGRATE_DATABASE"),
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
        self.pidfile = paths.run / f"{service.name}.pid"
        self.logfile = paths.logs / f"{service.name}.log"

    def pid(self) -> int | None:
        """The pid of this service's process; None for a stale pidfile or a reused pid."""
        try:
            pid = int(self.pidfile.read_text().split()[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            return None
        return pid if self.service.module.encode() in cmdline else None

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.ops_url + self.service.health_path, timeout=2) as r:
                return bool(r.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def start(self, environment: Mapping[str, str], runtime: Runtime) -> None:
        """Start it unless it already runs healthy; wait until its liveness endpoint answers."""
        if self.pid() is not None and self.healthy():
            log.info("%s: running on %s", self.name, self.url)
            return
        self.stop()
        for port in (self.port, self.ops_port):
            if port is not None and (holder := port_holder(port)) is not None:
                raise StackError(
                    f"{self.name}: {HOST}:{port} is held by another program ({holder}); stop "
                    "it or choose another --port-base"
                )
        log.info("%s: starting on %s ...", self.name, self.url)
        prefix = self.service.env_prefix
        env = {**environment, f"{prefix}HOST": HOST, f"{prefix}PORT": str(self.port)}
        if self.service.ops is not None:
            env |= {
                f"{self.service.ops[0]}HOST": HOST,
                f"{self.service.ops[0]}PORT": str(self.ops_port),
            }
        account = runtime.postgres_user if self.service.as_postgres_user else runtime.app_user
        if account is not None:
            env["HOME"] = account.home
        # The log is opened here and handed over: the service's user need not write to it.
        fd = os.open(self.logfile, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.fchmod(fd, 0o600)  # only its owner reads a service's log
        try:
            process = subprocess.Popen(
                [runtime.python, "-m", self.service.module],
                cwd=REPO_ROOT,
                env=self.service.environment(env),
                stdin=subprocess.DEVNULL,
                stdout=fd,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # not killed with the terminal that ran `make up`
                user=account.uid if account else None,
                group=account.gid if account else None,
                extra_groups=[] if account else None,
            )
        finally:
            os.close(fd)
        self.pidfile.write_text(f"{process.pid}\n")
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while process.poll() is not None or not self.healthy():
            if process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise StackError(f"{self.name} failed to start; see {shown(self.logfile)}")
            time.sleep(0.2)

    def stop(self) -> None:
        pid = self.pid()
        if pid is None:
            self.pidfile.unlink(missing_ok=True)
            return
        log.info("%s: stopping ...", self.name)
        os.kill(pid, signal.SIGTERM)  # the services finish in-flight work on SIGTERM
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        while self.pid() is not None:
            if time.monotonic() > deadline:
                log.warning("%s: still running after SIGTERM, killing it", self.name)
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
        self.pidfile.unlink(missing_ok=True)


def port_holder(port: int) -> str | None:
    """Who listens on the loopback TCP port: "pid N (command)", "an unknown process" when
    /proc does not say, or None when the port is free."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            # local address "0100007F:6B8A", state 0A = LISTEN, inode in field 9
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if any(os.readlink(fd) in inodes for fd in (proc / "fd").iterdir()):
                command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
                return f"pid {proc.name} ({command[:80]})"
        except OSError:
            continue
    return "an unknown process"
