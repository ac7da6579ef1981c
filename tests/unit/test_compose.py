"""compose.yaml, checked statically (no Docker engine on these machines): the memory budget
of a 2 GB VPS, and nothing but the published services reachable from outside the host."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

COMPOSE = Path(__file__).resolve().parents[2] / "compose.yaml"
BUDGET_BYTES = 2 * 1024**3
# DESIGN.md: only the bot's webhook may be reachable from outside the host.
PUBLIC_SERVICES = {"bot"}
UNITS = {"k": 1024, "m": 1024**2, "g": 1024**3}


def services() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text())
    return dict(document["services"])


def memory_limit(service: dict[str, Any]) -> int:
    text = str(service["deploy"]["resources"]["limits"]["memory"]).lower().rstrip("b")
    return int(text[:-1]) * UNITS[text[-1]] if text[-1] in UNITS else int(text)


def test_every_service_has_a_memory_limit_and_they_fit_in_2_gb() -> None:
    limits = {name: memory_limit(service) for name, service in services().items()}
    assert all(limit > 0 for limit in limits.values())
    assert sum(limits.values()) <= BUDGET_BYTES, limits


def test_only_loopback_ports_are_published() -> None:
    for name, service in services().items():
        if name in PUBLIC_SERVICES:
            continue
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


def test_the_bot_refuses_to_start_without_its_secrets() -> None:
    environment = services()["bot"]["environment"]
    for name in ("BOT_TOKEN", "BOT_WEBHOOK_SECRET", "BOT_PUBLIC_URL", "DB_PASSWORD"):
        assert ":?" in str(environment[name]), f"{name} has a default"


def _bind_sources(service: dict[str, Any]) -> list[Path]:
    sources = []
    for volume in service.get("volumes", []):
        source = str(volume).split(":", 1)[0]
        if source.startswith("./"):
            sources.append((COMPOSE.parent / source).resolve())
    return sources


def test_every_bind_mount_exists_in_the_repository() -> None:
    for name, service in services().items():
        for source in _bind_sources(service):
            assert source.exists(), f"{name} mounts {source}, which is not in the repository"


def test_the_monitoring_runs_on_the_files_the_local_stack_runs_on() -> None:
    from infra.monitoring import PGBOUNCER_EXPORTER_CONFIG, POSTGRES_EXPORTER_QUERIES
    from infra.observability.generate import PROMETHEUS_FILE, RULES_FILE

    mounted = {path for service in services().values() for path in _bind_sources(service)}
    for local in (
        PGBOUNCER_EXPORTER_CONFIG,
        POSTGRES_EXPORTER_QUERIES,
        PROMETHEUS_FILE,
        RULES_FILE.parent,
        COMPOSE.parent / "dashboards",
        COMPOSE.parent / "infra" / "grafana" / "provisioning",
    ):
        assert local.resolve() in mounted, f"compose does not mount {local}"
    images = {name: str(service.get("image", "")) for name, service in services().items()}
    # The versions the local stack runs (Debian's packages; the PgBouncer exporter's pin).
    assert images["postgres-exporter"].endswith(":v0.11.1")
    assert images["node-exporter"].endswith(":v1.5.0")
    assert images["prometheus"].endswith(":v2.42.0")
    assert images["pgbouncer-exporter"].endswith(":2.1.2")


def test_env_example_lists_every_setting_compose_reads() -> None:
    import re

    read = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", COMPOSE.read_text()))
    example = COMPOSE.parent / ".env.example"
    listed = {
        line.split("=", 1)[0]
        for line in example.read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert read - listed == set(), f".env.example lacks {sorted(read - listed)}"
