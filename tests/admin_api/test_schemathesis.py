"""Schemathesis over the whole OpenAPI document, with an admin key, against the service run as
its own process (uvicorn) through PgBouncer: no 5xx, and every response matches its schema."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import positive_data_acceptance

from services.core.schema import Role
from tests.conftest import REPO

from .conftest import bearer

STARTUP_SECONDS = 30
# Generated requests per operation.
EXAMPLES = 30


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
SEMANTIC_422: dict[str, list[Any]] = {"PUT /settings/{key}": [positive_data_acceptance]}


def test_every_operation_conforms(keys: dict[Role, str], server_url: str) -> None:
    # Schemathesis' own pytest plugin does not run under pytest 9, so each operation's
    # hypothesis test is built here from the schema's strategies.
    api_schema = schemathesis.openapi.from_url(f"{server_url}/openapi.json")
    headers = bearer(keys[Role.ADMIN])
    operations = []
    for result in api_schema.get_all_operations():
        assert isinstance(result, Ok), f"the OpenAPI document has an invalid operation: {result}"
        operations.append(result.ok())
    failures: dict[str, str] = {}
    for operation in operations:

        @given(case=operation.as_strategy().map(_without_cursor))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def conforms(case: schemathesis.Case[Any]) -> None:
            case.call_and_validate(
                base_url=server_url,
                headers=headers,
                excluded_checks=SEMANTIC_422.get(case.operation.label, []),
            )

        try:
            conforms()
        except BaseException as error:  # collected: one run reports every failing operation
            if not isinstance(error, Exception | BaseExceptionGroup):
                raise  # KeyboardInterrupt and the like
            failures[operation.label] = f"{type(error).__name__}: {error}"[:2000]
    assert len(operations) > 30
    assert not failures, "\n\n".join(f"{label}: {failure}" for label, failure in failures.items())
