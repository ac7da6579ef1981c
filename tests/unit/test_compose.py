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
