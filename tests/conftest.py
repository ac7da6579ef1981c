"""Fixtures shared by every test package, and the two test tiers.

Tiers (`make test-fast`, `make test`): a test whose fixtures include, directly or through
other fixtures, the session fixture `stack` (the local process stack: PostgreSQL, PgBouncer,
the services, the monitoring) is marked `stack`; a test marked `slow` by hand needs no stack
but is slow for another reason (it installs from PyPI, or runs a stack of its own); every other
test is marked `fast`. The marks are derived from the fixture closure at collection, so asking
for a database is all it takes to leave the fast tier. A fast test that starts a stack some
other way fails at once, saying what to do."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from infra.stack import LocalStack
from services.core.db import Database
from services.core.schema import metadata
from services.core.settings import DatabaseSettings
from services.telegram_api import TelegramAPISettings, TelegramServer

REPO = Path(__file__).resolve().parent.parent
# Away from the development stack's ports (base 25430), so `make up` and the tests coexist;
# both can be moved to run two test sessions side by side.
TEST_PORT_BASE = int(os.environ.get("TEST_STACK_PORT_BASE", "25530"))
TEST_STATE_DIR = Path(os.environ.get("TEST_STACK_DIR", REPO / ".stack-test"))

# The bots the local Bot API knows in tests; TOKEN is the one the bot under test uses.
TOKEN = "1000000001:test-token"
OTHER_TOKEN = "1000000002:other-test-token"

# modern: PgBouncer >= 1.21 with max_prepared_statements, statement caches on (production).
# legacy: PgBouncer 1.18 (the system package here), no protocol-level prepared statements.
MODES = ("modern", "legacy")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "stack" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.stack)
        elif item.get_closest_marker("slow") is None and item.get_closest_marker("deploy") is None:
            # Deploy tests need the compose stack of `make deploy-test`, never a fast tier.
            item.add_marker(pytest.mark.fast)


@pytest.fixture(autouse=True)
def _fast_tests_start_no_stack(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tier's rule, enforced: a fast test that reaches a stack anyway (asking for the
    fixture at run time, or starting one itself) fails instead of making the tier slow."""
    if request.node.get_closest_marker("fast") is None:
        return

    def refuse(*args: object, **kwargs: object) -> None:
        pytest.fail(
            f"{request.node.nodeid} is in the fast tier but starts the local stack: take the "
            "`stack` fixture (or one built on it) as an argument, or mark it @pytest.mark.slow"
        )

    monkeypatch.setattr(LocalStack, "up", refuse)


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


def bouncer_dsn(endpoints: dict[str, str], mode: str) -> str:
    if mode == "legacy":
        # Without an older system PgBouncer the legacy settings still run, against the new one.
        return endpoints.get("pgbouncer_legacy_dsn", endpoints["pgbouncer_dsn"])
    return endpoints["pgbouncer_dsn"]


@pytest.fixture
def mode() -> str:
    """The PgBouncer mode `database` connects through: production's, unless a package
    parametrizes this fixture over MODES (tests/integration does)."""
    return "modern"


@pytest.fixture
def empty_tables() -> bool:
    """Whether `owner` empties every table first: yes, unless a package's tests read what the
    stack and earlier tests wrote (tests/backup: backup_runs; tests/cli) and override it."""
    return True


@pytest.fixture
async def owner(endpoints: dict[str, str], empty_tables: bool) -> AsyncIterator[asyncpg.Connection]:
    """A direct connection as the migration role, for arranging and inspecting rows; every
    table is emptied first (see empty_tables), so each test starts from a clean database."""
    connection = await asyncpg.connect(endpoints["postgres_dsn"])
    if empty_tables:
        tables = ", ".join(table.name for table in metadata.sorted_tables)
        await connection.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture
async def database(
    endpoints: dict[str, str], mode: str, owner: asyncpg.Connection
) -> AsyncIterator[Database]:
    """The services' Database (engine, pool, metrics) through the stack's PgBouncer, on
    emptied tables."""
    settings = database_settings(bouncer_dsn(endpoints, mode), prepared_statements=mode == "modern")
    db = Database(settings, CollectorRegistry())
    try:
        yield db
    finally:
        await db.dispose()


@pytest.fixture(scope="session")
async def telegram() -> AsyncIterator[TelegramServer]:
    """One local Bot API for the session: strict, retry timing compressed, a free port."""
    telegram = TelegramServer(
        TelegramAPISettings(port=0, tokens=(TOKEN, OTHER_TOKEN), strict=True, time_scale=0.001)
    )
    await telegram.start()
    yield telegram
    await telegram.stop()


@pytest.fixture
async def server(telegram: TelegramServer) -> AsyncIterator[TelegramServer]:
    """The local Bot API, reset; strict mode fails the test on any invalid call it did not
    take away itself."""
    await telegram.reset()
    yield telegram
    await telegram.reset()  # stop delivering to a bot that is about to stop
    telegram.check()
