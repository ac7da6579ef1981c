"""The project's own Python services in the local stack (admin API, Telegram stand-in, later
the bot and the backup service): background processes of the current user on loopback ports,
each started by `up` after the database is ready and considered up once its liveness endpoint
answers."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from infra.stack_state import HOST, Layout, Ports
from infra.system import StackError, shown

log = logging.getLogger("infra.stack")

REPO_ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 15.0


@dataclass(frozen=True)
class AppService:
    name: str  # label, and the stem of its pid and log files
    module: str  # run as `python -m module`
    env_prefix: str  # its settings' prefix: the stack sets <prefix>HOST and <prefix>PORT
    port_offset: int  # its port is Ports.app(port_offset)
    endpoint: str  # its URL's key in endpoints.json
    endpoint_path: str = ""  # appended to its base URL in endpoints.json
    # The variable the services started after it read its base URL from, if any.
    url_variable: str | None = None
    health_path: str = "/health/live"


# In start order; a service may rely on those before it being up.
APP_SERVICES: tuple[AppService, ...] = (
    # The Telegram Bot API stand-in: the bot talks to it unless BOT_API_URL says otherwise.
    AppService(
        "telegram-api",
        "services.telegram_api",
        "TELEGRAM_API_",
        3,
        "telegram_api_url",
        url_variable="BOT_API_URL",
    ),
    AppService("bot", "services.bot", "BOT_WEBHOOK_", 2, "bot_webhook_url", "/telegram/webhook"),
    AppService("admin-api", "services.admin_api", "ADMIN_API_", 0, "admin_api_url"),
    AppService("backup", "services.backup", "BACKUP_SERVICE_", 1, "backup_url"),
)


class AppServiceProcess:
    def __init__(self, paths: Layout, ports: Ports, service: AppService) -> None:
        self.service = service
        self.name = service.name
        self.port = ports.app(service.port_offset)
        self.url = f"http://{HOST}:{self.port}"
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
            with urllib.request.urlopen(self.url + self.service.health_path, timeout=2) as reply:
                return bool(reply.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def start(self, environment: Mapping[str, str]) -> None:
        """Start it unless it already runs healthy; wait until its liveness endpoint answers."""
        if self.pid() is not None and self.healthy():
            log.info("%s: running on %s", self.name, self.url)
            return
        self.stop()
        log.info("%s: starting on %s ...", self.name, self.url)
        prefix = self.service.env_prefix
        env = {**environment, f"{prefix}HOST": HOST, f"{prefix}PORT": str(self.port)}
        with self.logfile.open("ab") as logfile:
            process = subprocess.Popen(
                [sys.executable, "-m", self.service.module],
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=logfile,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # not killed with the terminal that ran `make up`
            )
        self.pidfile.write_text(f"{process.pid}\n")
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while not self.healthy():
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
