"""Fixtures shared by every test tier: the local process stack (the same one `make up` runs,
in its own state directory and ports) and the settings that point at it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from infra.stack import LocalStack
from services.core.settings import DatabaseSettings

REPO = Path(__file__).resolve().parent.parent
# Away from the development stack's ports (base 25430), so `make up` and the tests coexist;
# both can be moved to run two test sessions side by side.
TEST_PORT_BASE = int(os.environ.get("TEST_STACK_PORT_BASE", "25530"))
TEST_STATE_DIR = Path(os.environ.get("TEST_STACK_DIR", REPO / ".stack-test"))


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    # The stack's bot would deliver outbox rows the tests create and inspect themselves.
    local = LocalStack(
        TEST_STATE_DIR,
        port_base=TEST_PORT_BASE,
        service_env={"BOT_OUTBOX_DELIVERY": "false"},
        # Alerts are proven on real faults in seconds rather than minutes.
        scrape_interval="1s",
    )
    local.down(purge=True)  # every run starts from an empty cluster
    local.up()
    yield local
    local.down()


@pytest.fixture(scope="session")
def endpoints(stack: LocalStack) -> dict[str, str]:
    return stack.endpoints()


def database_settings(dsn: str, **overrides: object) -> DatabaseSettings:
    """Settings for a service connecting with the given DSN (the stack's PgBouncer address)."""
    url = urlsplit(dsn)
    values: dict[str, object] = {
        "host": url.hostname,
        "port": url.port,
        "user": url.username,
        "password": url.password,
        "name": url.path.lstrip("/"),
    }
    return DatabaseSettings(**(values | overrides))  # type: ignore[arg-type]
