"""The deploy test's checks run against the stack `make deploy-test` (infra/deploy_test.py)
brought up with compose.yaml and compose.override.yaml; it passes the compose command, the
secrets directory and the host ports in DEPLOY_COMPOSE, DEPLOY_SECRETS_DIR and DEPLOY_PORTS.
Every test here is marked `deploy`: the plain `make test` deselects them (pyproject's
addopts), `make deploy-test` selects them."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).is_relative_to(HERE):
            item.add_marker(pytest.mark.deploy)


@dataclass(frozen=True)
class Deployed:
    command: list[str]
    secrets_dir: Path
    ports: dict[str, int]

    def compose(self, *arguments: str, check: bool = True, timeout: float = 300) -> str:
        result = subprocess.run(
            [*self.command, *arguments], capture_output=True, text=True, timeout=timeout
        )
        if check and result.returncode != 0:
            raise AssertionError(f"compose {' '.join(arguments)}: {result.stderr[-2000:]}")
        return result.stdout

    def docker(self, *arguments: str) -> str:
        result = subprocess.run(["docker", *arguments], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def secret(self, name: str) -> str:
        return (self.secrets_dir / name).read_text().strip()

    def psql(self, sql: str) -> str:
        return self.compose(
            "exec", "-T", "postgres", "psql", "-U", "postgres", "-d", "botstack", "-tAc", sql
        ).strip()

    def containers(self) -> list[dict[str, Any]]:
        out = self.compose("ps", "--all", "--format", "json")
        # Compose prints one JSON object per line.
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def inspect(self, container: str) -> dict[str, Any]:
        return dict(json.loads(self.docker("inspect", container))[0])

    def config(self, *files: str) -> dict[str, Any]:
        return dict(json.loads(self.compose("config", "--format", "json")))

    def url(self, port: str) -> str:
        return f"http://127.0.0.1:{self.ports[port]}"


@pytest.fixture(scope="session")
def deployed() -> Deployed:
    if "DEPLOY_COMPOSE" not in os.environ:
        pytest.fail("run these through `make deploy-test`, which deploys the stack first")
    return Deployed(
        json.loads(os.environ["DEPLOY_COMPOSE"]),
        Path(os.environ["DEPLOY_SECRETS_DIR"]),
        json.loads(os.environ["DEPLOY_PORTS"]),
    )


def eventually(condition: Callable[[], bool], within: float, what: str) -> None:
    """Waits for a condition (polled every half second), failing with `what` after `within`."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within:.0f} s: {what}")
        time.sleep(0.5)
