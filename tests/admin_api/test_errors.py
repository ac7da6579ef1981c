"""Errors are RFC 9457 problem+json, never a stack trace or SQL text."""

from __future__ import annotations

import base64
import time

import asyncpg
import httpx
from prometheus_client import CollectorRegistry

from infra.stack import LocalStack
from services.admin_api.app import create_app
from services.core.db import Database
from services.core.schema import Role
from tests.conftest import database_settings

from . import seed
from .conftest import UNLIMITED, bearer

PROBLEM = "application/problem+json"


def _is_problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, object] = response.json()
    assert body["status"] == status
    assert isinstance(body["title"], str)
    for leak in ("Traceback", "SELECT", "INSERT", "UPDATE", "asyncpg", "sqlalchemy"):
        assert leak not in response.text
    return body


async def test_unknown_row_is_404(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    body = _is_problem(await client.get("/users/12345", headers=admin), 404)
    assert body["detail"] == "user 12345 not found"


async def test_unknown_route_is_404_problem(client: httpx.AsyncClient) -> None:
    _is_problem(await client.get("/no/such/thing"), 404)


async def test_duplicate_product_code_is_409(
    client: httpx.AsyncClient, admin: dict[str, str], owner: asyncpg.Connection
) -> None:
    await seed.product(owner, "pack10")
    product = {"code": "pack10", "title": "again", "price_stars": 1, "credits": 1}
    body = _is_problem(await client.post("/products", json=product, headers=admin), 409)
    assert body["field"] == "body.code"
    assert body["detail"] == "code: this value is already taken"  # no constraint names
    assert await owner.fetchval("SELECT count(*) FROM audit_log") == 0


async def test_invalid_input_is_422_naming_the_field(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    product = {"code": "pack", "title": "t", "price_stars": 0, "credits": 1}
    body = _is_problem(await client.post("/products", json=product, headers=admin), 422)
    assert body["field"] == "body.price_stars"
    body = _is_problem(await client.get("/users?limit=0", headers=admin), 422)
    assert body["field"] == "query.limit"
    body = _is_problem(await client.get("/users?cursor=garbage", headers=admin), 422)
    assert body["field"] == "query.cursor"


def _cursor(payload: str) -> str:
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


async def test_forged_cursors_are_422_in_the_apis_words(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    forged = [
        '["2026-01-01T00:00:00+00:00", 1e400]',  # an overflowing float
        '["2026-01-01T00:00:00+00:00", 99999999999999999999999]',  # past int64
        '["2026-01-01T00:00:00", 5]',  # no zone: the driver refuses a naive time
        '["0001-01-01T00:00:00+00:00", 1.5]',
        "[null, 1]",
    ]
    for path in ("/users", "/payments", "/audit", "/tickets"):
        for payload in forged:
            response = await client.get(f"{path}?cursor={_cursor(payload)}", headers=admin)
            body = _is_problem(response, 422)
            assert body["field"] == "query.cursor", (path, payload)
            for leak in ("query argument", "datetime.datetime", "int64", "$1"):
                assert leak not in response.text, (path, payload)


async def test_every_bad_field_is_reported(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    product = {"code": "", "title": "t", "price_stars": 0, "credits": -1}
    body = _is_problem(await client.post("/products", json=product, headers=admin), 422)
    errors = body["errors"]
    assert isinstance(errors, list)
    assert {"body.price_stars", "body.credits"} <= {item["field"] for item in errors}
    assert body["field"] == errors[0]["field"]


async def test_database_down_is_503_with_retry_after(
    endpoints: dict[str, str], keys: dict[Role, str]
) -> None:
    # A closed port stands for PgBouncer or PostgreSQL being down.
    down = Database(
        database_settings(endpoints["pgbouncer_dsn"], port=1, connect_timeout=0.5),
        CollectorRegistry(),
    )
    app = create_app(UNLIMITED, down)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://admin-api"
    ) as client:
        ready = await client.get("/health/ready")
        users = await client.get("/users", headers=bearer(keys[Role.ADMIN]))
        live = await client.get("/health/live")
    await down.dispose()
    for response in (ready, users):
        _is_problem(response, 503)
        assert response.headers["retry-after"] == "5"
    assert live.status_code == 200


# The first request after PostgreSQL stops waits in PgBouncer's queue for query_wait_timeout
# (1 s, infra/pgbouncer/pooling.ini; it took 5 s at 5); the bound leaves room for a busy machine.
FIRST_FAILURE_SECONDS = 3.0


async def test_the_first_request_after_postgresql_stops_fails_fast(
    stack: LocalStack, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    assert (await client.get("/users", headers=admin)).status_code == 200  # pooled, served
    stack.stop_postgres()
    try:
        timings = []
        for _ in range(3):
            started = time.monotonic()
            response = await client.get("/users", headers=admin)
            timings.append(time.monotonic() - started)
            _is_problem(response, 503)
    finally:
        stack.start_postgres()
    print("503s after the stop, ms:", [round(seconds * 1000) for seconds in timings])
    assert timings[0] < FIRST_FAILURE_SECONDS
    assert (await client.get("/users", headers=admin)).status_code == 200  # and it recovers


async def test_unexpected_error_is_a_bare_500(
    client: httpx.AsyncClient, admin: dict[str, str], app: object
) -> None:
    async def broken() -> None:
        raise RuntimeError("secret internals: SELECT password FROM staff")

    app.add_api_route("/broken", broken)  # type: ignore[attr-defined]
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://admin-api") as raw:
        body = _is_problem(await raw.get("/broken"), 500)
    assert body["detail"] == "internal error"
