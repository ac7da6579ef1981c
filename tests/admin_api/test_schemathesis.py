"""Schemathesis over the whole OpenAPI document, with an admin key, against the service run as
its own process (uvicorn) through PgBouncer, with data that fits the schema and data that does
not (bodies that are not JSON among it): no 5xx, and every response conforms to the document
(a documented status, its content type, headers and schema)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.strategies import SearchStrategy
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from services.core.schema import Role
from tests.conftest import REPO

from .conftest import bearer

STARTUP_SECONDS = 30
# Generated requests per operation, for data that fits the schema and data that does not.
EXAMPLES = {GenerationMode.POSITIVE: 20, GenerationMode.NEGATIVE: 10}
# Whatever the data, the response conforms to the document.
CONFORMANCE = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_until_live(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        assert process.poll() is None, "the admin API exited during start-up"
        try:
            with urllib.request.urlopen(f"{url}/health/live", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"the admin API did not answer on {url}")


@pytest.fixture(scope="module")
def server_url(endpoints: dict[str, str]) -> Iterator[str]:
    dsn = urlsplit(endpoints["pgbouncer_dsn"])
    port = _free_port()
    env = os.environ | {
        "DB_HOST": str(dsn.hostname),
        "DB_PORT": str(dsn.port),
        "DB_USER": str(dsn.username),
        "DB_PASSWORD": str(dsn.password),
        "DB_NAME": dsn.path.lstrip("/"),
        "ADMIN_API_PORT": str(port),
        "ADMIN_API_RATE_LIMIT_PER_MINUTE": "1000000",
        "ADMIN_API_RATE_BURST": "1000000",
        # Schemathesis sends invalid keys on purpose, from one address, many times.
        "ADMIN_API_FAILED_AUTH_PER_MINUTE": "1000000",
        "ADMIN_API_FAILED_AUTH_BURST": "1000000",
        "APP_LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen([sys.executable, "-m", "services.admin_api"], cwd=REPO, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_live(url, process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=15)


def _without_cursor(case: schemathesis.Case[Any]) -> schemathesis.Case[Any]:
    """A cursor is opaque: any string the API did not issue is rightly refused (422), which
    schemathesis would take for valid data rejected. Cursors are covered by test_queries."""
    if case.query:
        case.query.pop("cursor", None)
    return case


# Operations whose bodies have rules a JSON schema cannot state, so a schema-valid body may
# rightly be refused with 422: a runtime setting's value must fit its model (booking.hours:
# close after open, an IANA zone), tested in test_changes.py and tests/bot/test_booking.py.
SEMANTIC_422 = {"PUT /settings/{key}"}


def _checks(mode: GenerationMode, label: str) -> list[Any]:
    if mode is GenerationMode.POSITIVE and label not in SEMANTIC_422:
        return [*CONFORMANCE, positive_data_acceptance]
    return CONFORMANCE


def _conformance_test(
    strategy: SearchStrategy[schemathesis.Case[Any]],
    examples: int,
    checks: list[Any],
    server_url: str,
    headers: dict[str, str],
) -> Callable[[], None]:
    @given(case=strategy)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def conforms(case: schemathesis.Case[Any]) -> None:
        case.call_and_validate(base_url=server_url, headers=headers, checks=checks)

    return conforms


def _takes_input(operation: Any) -> bool:
    """Whether the operation takes any parameter, header (the key) or body."""
    return any((operation.path_parameters, operation.query, operation.headers, operation.body))


@pytest.fixture
async def admin_key_id(keys: dict[Role, str], owner: asyncpg.Connection) -> int:
    key_id: int = await owner.fetchval(
        "SELECT api_keys.id FROM api_keys JOIN staff ON staff.id = api_keys.staff_id"
        " WHERE staff.name = 'admin'"
    )
    return key_id


def test_every_operation_conforms(
    keys: dict[Role, str], admin_key_id: int, server_url: str
) -> None:
    # Schemathesis' own pytest plugin does not run under pytest 9, so each operation's
    # hypothesis test is built here from the schema's strategies.
    api_schema = schemathesis.openapi.from_url(f"{server_url}/openapi.json")
    headers = bearer(keys[Role.ADMIN])
    operations = []
    for result in api_schema.get_all_operations():
        assert isinstance(result, Ok), f"the OpenAPI document has an invalid operation: {result}"
        operations.append(result.ok())

    def keeps_the_key(case: schemathesis.Case[Any]) -> bool:
        """Revoking the run's own key would turn every later request into a 401."""
        return (case.path_parameters or {}).get("key_id") != admin_key_id

    failures: dict[str, str] = {}
    for operation in operations:
        for mode, examples in EXAMPLES.items():
            if mode is GenerationMode.NEGATIVE and not _takes_input(operation):
                continue  # nothing to send that does not fit (the public probes)
            strategy = operation.as_strategy(mode).map(_without_cursor).filter(keeps_the_key)

            conforms = _conformance_test(
                strategy, examples, _checks(mode, operation.label), server_url, headers
            )
            try:
                conforms()
            except BaseException as error:  # collected: one run reports every failing operation
                if not isinstance(error, Exception | BaseExceptionGroup):
                    raise  # KeyboardInterrupt and the like
                failures[f"{operation.label} ({mode})"] = f"{type(error).__name__}: {error}"[:2000]
    assert len(operations) > 30
    assert not failures, "\n\n".join(f"{label}: {failure}" for label, failure in failures.items())
