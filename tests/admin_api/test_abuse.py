"""Abuse that must cost the admin API nothing: oversized bodies are refused before they are
read (over a real socket, against the stack's admin API process), and a client guessing keys
is throttled by address before any key is looked up, while others are served."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import urlsplit

import httpx
from prometheus_client import CollectorRegistry

from services.admin_api.app import create_app
from services.admin_api.settings import AdminApiSettings
from services.core.db import Database
from services.core.schema import Role
from tests.conftest import database_settings

from .conftest import bearer

MB = 1024 * 1024


async def _post_raw(url: str, headers: str, body: bytes) -> tuple[int, dict[str, object]]:
    """A POST written on a socket as a client that has sent only part of its body yet (none of
    it, or a first chunk): the answer must come before the rest is sent."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(f"POST /products HTTP/1.1\r\nHost: admin\r\n{headers}\r\n".encode() + body)
        await writer.drain()
        head, _, rest = (await asyncio.wait_for(reader.read(), 10)).partition(b"\r\n\r\n")
    finally:
        writer.close()
    status = int(head.split()[1])
    assert b"content-type: application/problem+json" in head.lower()
    return status, json.loads(rest)


async def test_oversized_bodies_are_refused_before_the_key_is_checked(
    endpoints: dict[str, str],
) -> None:
    url = endpoints["admin_api_url"]
    key = "Authorization: Bearer bsk_wrong\r\n"
    announced = await _post_raw(url, f"{key}Content-Length: {200 * MB}\r\n", b"")
    chunk = f"{MB:x}\r\n".encode() + b" " * MB + b"\r\n"
    streamed = await _post_raw(url, "Transfer-Encoding: chunked\r\n", chunk + chunk[:1000])
    for status, body in (announced, streamed):
        assert status == 413
        assert body["detail"] == f"request body larger than {MB} bytes"
    async with httpx.AsyncClient(base_url=url) as client:
        small = await client.post("/products", json={"code": "x"}, headers=bearer("bsk_wrong"))
    assert small.status_code == 401  # under the cap, the key is checked as before


async def test_failed_keys_are_throttled_per_address_without_a_database_query(
    endpoints: dict[str, str], keys: dict[Role, str]
) -> None:
    registry = CollectorRegistry()
    database = Database(database_settings(endpoints["pgbouncer_dsn"]), registry)
    app = create_app(AdminApiSettings(failed_auth_per_minute=6, failed_auth_burst=5), database)

    def queries() -> float:
        samples = [s for m in registry.collect() if m.name == "db_queries" for s in m.samples]
        return sum(s.value for s in samples if s.name == "db_queries_total")

    def client(address: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(address, 40000))
        return httpx.AsyncClient(transport=transport, base_url="http://admin-api")

    try:
        async with client("203.0.113.7") as guesser, client("198.51.100.2") as staff:
            guesses = [
                await guesser.get("/products", headers=bearer(f"bsk_guess{i}")) for i in range(5)
            ]
            assert [r.status_code for r in guesses] == [401] * 5
            before = queries()
            throttled = await asyncio.gather(
                *(guesser.get("/products", headers=bearer(f"bsk_more{i}")) for i in range(200))
            )
            assert {r.status_code for r in throttled} == {429}
            assert queries() == before, "a throttled guess still queried the database"
            assert 1 <= int(throttled[0].headers["retry-after"]) <= 60
            assert "failed API key attempts" in throttled[0].json()["detail"]
            # The right key from the same address waits too; another address is served at once.
            same = await guesser.get("/products", headers=bearer(keys[Role.VIEWER]))
            assert same.status_code == 429
            served = await staff.get("/products", headers=bearer(keys[Role.VIEWER]))
            assert served.status_code == 200
    finally:
        await database.dispose()
