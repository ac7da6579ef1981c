"""compose.yaml as the one description of the topology the local stack also runs: the
programs' versions (x-versions) and the monitoring programs' flags (their `command`), read
here by infra/monitoring.py, infra/binaries.py and infra/pgbouncer_build.py, as
infra/cgroups.py reads the memory limits. Only where a program listens and where its files
are differ between the two (containers vs. one host's loopback ports and state directory)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

COMPOSE_FILE = Path(__file__).resolve().parent.parent / "compose.yaml"
# Flags naming a place (an address, a file, a directory): each stack sets its own.
PLACES = (
    "--web.listen-address",
    "--config.file",
    "--storage.tsdb.path",
    "--extend.query-path",
    "--path.rootfs",
)


@cache
def _document() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE_FILE.read_text()))


def versions() -> dict[str, str]:
    """x-versions: POSTGRES_MAJOR, PGBOUNCER_VERSION, PROMETHEUS_VERSION, ..."""
    return {key: str(value) for key, value in _document()["x-versions"].items()}


def flags(service: str) -> list[str]:
    """The service's command-line flags in compose.yaml, but those naming a place."""
    command = [str(part) for part in _document()["services"][service]["command"]]
    return [flag for flag in command if not flag.startswith(PLACES)]
