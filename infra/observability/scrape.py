"""What Prometheus scrapes, defined once: each job's target in compose (a service's name on
the internal network) and in the local stack (a loopback port of the port base). The compose
file (infra/prometheus/prometheus.yml) is generated and committed; the local stack renders
its own at `up`, with the same jobs, rule files and settings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from infra.app_services import APP_SERVICES
from infra.stack_state import HOST, Ports

# Offsets of the monitoring programs' ports, after the services' (infra/app_services.py).
PROMETHEUS, ALERTMANAGER, POSTGRES_EXPORTER, PGBOUNCER_EXPORTER, NODE_EXPORTER = range(10, 15)


@dataclass(frozen=True)
class Job:
    name: str
    compose_target: str
    local_port: Callable[[Ports], int]


def _service_port(name: str) -> Callable[[Ports], int]:
    """Where a service of infra/app_services.py serves /metrics: its own port for health and
    metrics when it has one (the bot: not the webhook's), else its main port."""
    service = next(s for s in APP_SERVICES if s.name == name)
    offset = service.ops[1] if service.ops else service.port_offset
    return lambda ports: ports.app(offset)


JOBS: tuple[Job, ...] = (
    Job("prometheus", "localhost:9090", lambda p: p.app(PROMETHEUS)),
    Job("bot", "bot:8081", _service_port("bot")),
    Job("admin-api", "admin-api:8000", _service_port("admin-api")),
    Job("backup", "backup:8000", _service_port("backup")),
    Job("postgres", "postgres-exporter:9187", lambda p: p.app(POSTGRES_EXPORTER)),
    Job("pgbouncer", "pgbouncer-exporter:9127", lambda p: p.app(PGBOUNCER_EXPORTER)),
    Job("node", "node-exporter:9100", lambda p: p.app(NODE_EXPORTER)),
)
SCRAPE_INTERVAL = "15s"
COMPOSE_RULE_FILES = ["/etc/prometheus/rules/*.yml"]


def prometheus_config(
    targets: dict[str, str],
    rule_files: list[str],
    scrape_interval: str = SCRAPE_INTERVAL,
    alertmanager: str | None = None,
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "global": {
            "scrape_interval": scrape_interval,
            "evaluation_interval": scrape_interval,
            "scrape_timeout": _timeout(scrape_interval),
        },
        "rule_files": rule_files,
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [target]}]}
            for job, target in targets.items()
        ],
    }
    if alertmanager is not None:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
    return config


def _timeout(interval: str) -> str:
    """A scrape must end before the next one starts."""
    seconds = int(interval.rstrip("s"))
    return f"{max(1, min(10, seconds - 1 if seconds > 1 else 1))}s"


def compose_config() -> dict[str, Any]:
    return prometheus_config({job.name: job.compose_target for job in JOBS}, COMPOSE_RULE_FILES)


def local_targets(ports: Ports) -> dict[str, str]:
    return {job.name: f"{HOST}:{job.local_port(ports)}" for job in JOBS}
