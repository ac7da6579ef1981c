"""The local stack's monitoring, the programs compose runs (at the same versions where the
registries here have them): Prometheus 2.42 scraping every service and exporter and
evaluating the generated alert rules, Alertmanager 0.25 delivering alerts to the staff chat
of the local Telegram Bot API, postgres_exporter 0.11.1 (as the monitoring role, with the
custom query of infra/postgres_exporter), prometheus-pgbouncer-exporter 2.1.2 (PyPI; it
works with PgBouncer 1.24, unlike Debian's older program of that name) and node_exporter
1.5. All from Debian's packages but the PgBouncer exporter, which gets a virtual environment
of its own in the state directory (its pinned dependencies clash with the project's). All run
as the unprivileged user of the services, on loopback ports from base + 2010."""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import yaml

from infra.observability.generate import RULES_FILE
from infra.observability.notifications import MESSAGE
from infra.observability.scrape import (
    ALERTMANAGER,
    NODE_EXPORTER,
    PGBOUNCER_EXPORTER,
    POSTGRES_EXPORTER,
    PROMETHEUS,
    local_targets,
    prometheus_config,
)
from infra.processes import Placement, Supervised, unplaced
from infra.service_runtime import REPO_ROOT, SYSTEM_PYTHON, Account, Runtime
from infra.stack_state import HOST, Credentials, Layout, Ports
from infra.system import Apt, StackError, run, write_file
from infra.topology import flags, versions

PACKAGES = {
    "prometheus": "/usr/bin/prometheus",
    "prometheus-alertmanager": "/usr/bin/prometheus-alertmanager",
    "prometheus-postgres-exporter": "/usr/bin/prometheus-postgres-exporter",
    "prometheus-node-exporter": "/usr/bin/prometheus-node-exporter",
}
_VERSIONS = versions()
PROGRAMS = {
    "node-exporter": f"node_exporter {_VERSIONS['NODE_EXPORTER_VERSION']}",
    "postgres-exporter": f"postgres_exporter {_VERSIONS['POSTGRES_EXPORTER_VERSION']}",
    "pgbouncer-exporter": "prometheus-pgbouncer-exporter 2.1.2",
    "alertmanager": "Alertmanager 0.25",
    "prometheus": f"Prometheus {_VERSIONS['PROMETHEUS_VERSION']}",
}
POSTGRES_EXPORTER_QUERIES = REPO_ROOT / "infra" / "postgres_exporter" / "queries.yaml"
PGBOUNCER_EXPORTER_CONFIG = REPO_ROOT / "infra" / "pgbouncer_exporter" / "config.yml"
PGBOUNCER_EXPORTER_REQUIREMENTS = REPO_ROOT / "infra" / "pgbouncer_exporter" / "requirements.txt"
# The local stack's staff group (a forum supergroup of the stand-in) when BOT_STAFF_CHAT_ID is
# not set: where alerts arrive.
DEFAULT_STAFF_CHAT_ID = -1001000000001


@dataclass(frozen=True)
class MonitoringSettings:
    scrape_interval: str = "15s"
    staff_chat_id: int = DEFAULT_STAFF_CHAT_ID
    telegram_api_url: str = ""
    telegram_token: str = ""


class Monitoring:
    def __init__(self, paths: Layout, ports: Ports) -> None:
        self.paths = paths
        self.ports = ports
        self.root = paths.root / "monitoring"

    def urls(self) -> dict[str, str]:
        return {
            "prometheus_url": f"http://{HOST}:{self.ports.app(PROMETHEUS)}",
            "alertmanager_url": f"http://{HOST}:{self.ports.app(ALERTMANAGER)}",
        }

    def processes(self) -> list[Supervised]:
        def supervised(name: str, marker: str, offset: int, path: str) -> Supervised:
            port = self.ports.app(offset)
            return Supervised(
                name,
                marker,
                (port,),
                f"http://{HOST}:{port}{path}",
                self.paths.run / f"{name}.pid",
                self.paths.logs / f"{name}.log",
                PROGRAMS[name],
            )

        return [
            supervised("node-exporter", PACKAGES["prometheus-node-exporter"], NODE_EXPORTER, "/"),
            supervised(
                "postgres-exporter",
                PACKAGES["prometheus-postgres-exporter"],
                POSTGRES_EXPORTER,
                "/",
            ),
            supervised(
                "pgbouncer-exporter", str(PGBOUNCER_EXPORTER_CONFIG), PGBOUNCER_EXPORTER, "/"
            ),
            supervised(
                "alertmanager", PACKAGES["prometheus-alertmanager"], ALERTMANAGER, "/-/ready"
            ),
            supervised("prometheus", PACKAGES["prometheus"], PROMETHEUS, "/-/ready"),
        ]

    def start(
        self,
        credentials: Credentials,
        settings: MonitoringSettings,
        apt: Apt,
        runtime: Runtime,
        placement: Placement = unplaced,
    ) -> None:
        missing = [package for package, binary in PACKAGES.items() if not Path(binary).exists()]
        if missing:
            apt.install(missing, "the monitoring programs")
        account = runtime.app_user
        for directory in (self.root, self.root / "prometheus", self.root / "alertmanager"):
            directory.mkdir(mode=0o750, exist_ok=True)
            _own(directory, account)
        exporter = self._pgbouncer_exporter()
        node, pg_exporter, bouncer_exporter, alertmanager, prometheus = self.processes()
        node.start(
            [
                PACKAGES["prometheus-node-exporter"],
                f"--web.listen-address={HOST}:{self.ports.app(NODE_EXPORTER)}",
                # Host CPU, memory, disk and load: compose.yaml's collectors.
                *flags("node-exporter"),
            ],
            {},
            account,
            placement=placement,
        )
        monitor = credentials.monitor
        dsn = (
            f"postgresql://{quote(monitor.user)}:"
            f"{quote(monitor.password.get_secret_value(), safe='')}@{HOST}:"
            f"{self.ports.postgres}/{quote(credentials.migrate.database)}?sslmode=disable"
        )
        pg_exporter.start(
            [
                PACKAGES["prometheus-postgres-exporter"],
                f"--web.listen-address={HOST}:{self.ports.app(POSTGRES_EXPORTER)}",
                f"--extend.query-path={POSTGRES_EXPORTER_QUERIES}",
                *flags("postgres-exporter"),
            ],
            {"DATA_SOURCE_NAME": dsn},
            account,
            placement=placement,
        )
        stats = credentials.bouncer
        bouncer_exporter.start(
            [exporter, "--config", PGBOUNCER_EXPORTER_CONFIG, "--log-level", "WARNING"],
            {
                "PGBOUNCER_EXPORTER_HOST": HOST,
                "PGBOUNCER_EXPORTER_PORT": str(self.ports.app(PGBOUNCER_EXPORTER)),
                "PGBOUNCER_STATS_USER": stats.stats_user,
                "PGBOUNCER_STATS_PASSWORD": stats.stats_password.get_secret_value(),
                "PGBOUNCER_HOST": HOST,
                "PGBOUNCER_PORT": str(self.ports.pgbouncer),
            },
            account,
            placement=placement,
        )
        config = self.root / "alertmanager" / "alertmanager.yml"
        write_file(config, yaml.safe_dump(self._alertmanager_config(settings)), 0o600)
        _own(config, account)
        alertmanager.start(
            [
                PACKAGES["prometheus-alertmanager"],
                f"--config.file={config}",
                f"--storage.path={self.root / 'alertmanager'}",
                f"--web.listen-address={HOST}:{self.ports.app(ALERTMANAGER)}",
                "--cluster.listen-address=",  # one instance: no gossip port
            ],
            {},
            account,
            placement=placement,
        )
        scrape = prometheus_config(
            local_targets(self.ports),
            [str(RULES_FILE)],
            settings.scrape_interval,
            f"{HOST}:{self.ports.app(ALERTMANAGER)}",
        )
        config = self.root / "prometheus" / "prometheus.yml"
        write_file(config, yaml.safe_dump(scrape, sort_keys=False), 0o644)
        data = self.root / "prometheus" / "data"
        data.mkdir(mode=0o750, exist_ok=True)
        _own(data, account)
        prometheus.start(
            [
                PACKAGES["prometheus"],
                f"--config.file={config}",
                f"--storage.tsdb.path={data}",
                *flags("prometheus"),  # compose.yaml's retention, by time and by size
                f"--web.listen-address={HOST}:{self.ports.app(PROMETHEUS)}",
            ],
            {},
            account,
            placement=placement,
        )

    def stop(self) -> None:
        for process in reversed(self.processes()):
            process.stop()

    def _alertmanager_config(self, settings: MonitoringSettings) -> dict[str, object]:
        return {
            "route": {
                "receiver": "staff-telegram",
                "group_by": ["alertname"],
                "group_wait": "5s",
                "group_interval": "1m",
                "repeat_interval": "4h",
            },
            "receivers": [
                {
                    "name": "staff-telegram",
                    "telegram_configs": [
                        {
                            "api_url": settings.telegram_api_url,
                            "bot_token": settings.telegram_token,
                            "chat_id": settings.staff_chat_id,
                            "send_resolved": True,
                            "parse_mode": "",
                            "message": MESSAGE,  # also Grafana's
                        }
                    ],
                }
            ],
        }

    def _pgbouncer_exporter(self) -> Path:
        """The exporter's own virtual environment, readable by the services' user."""
        venv = self.root / "pgbouncer-exporter"
        program = venv / "bin" / "pgbouncer-exporter"
        wanted = PGBOUNCER_EXPORTER_REQUIREMENTS.read_text()
        installed = venv / "requirements.txt"  # what it was installed from
        if program.exists() and installed.exists() and installed.read_text() == wanted:
            return program
        uv = os.environ.get("UV") or shutil.which("uv")
        if uv is None:
            raise StackError("uv is needed to install prometheus-pgbouncer-exporter")
        log_file = self.paths.logs / "pgbouncer-exporter-install.log"
        env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
        python = SYSTEM_PYTHON if SYSTEM_PYTHON.exists() else Path(sys.executable)
        run(
            [uv, "venv", "--clear", "--python", python, venv],
            failure="could not create the PgBouncer exporter's environment",
            env=env,
            log_file=log_file,
        )
        run(
            [
                uv,
                "pip",
                "install",
                "--python",
                venv / "bin" / "python",
                "--no-deps",
                "--link-mode",
                "copy",
                "--compile-bytecode",
                "--requirement",
                PGBOUNCER_EXPORTER_REQUIREMENTS,
            ],
            failure="could not install prometheus-pgbouncer-exporter",
            env=env,
            log_file=log_file,
        )
        installed.write_text(wanted)
        return program


def _own(path: Path, account: Account | None) -> None:
    if account is not None:
        os.chown(path, account.uid, account.gid)
