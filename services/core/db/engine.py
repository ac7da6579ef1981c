"""One async engine per process, pointed at PgBouncer in transaction mode."""

from __future__ import annotations

from time import monotonic
from typing import Any
from uuid import uuid4

from pydantic import SecretStr
from sqlalchemy import URL, event, exc
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ..settings import DatabaseSettings

# A pooled connection idle for longer than this is pinged before it is handed out.
# Busy connections are not: through PgBouncer the client socket rarely dies, and a ping on
# every checkout would cost three round trips per transaction.
PING_AFTER_IDLE_SECONDS = 10.0


def asyncpg_url(*, user: str, password: SecretStr, host: str, port: int, database: str) -> URL:
    return URL.create(
        "postgresql+asyncpg",
        username=user,
        password=password.get_secret_value(),
        host=host,
        port=port,
        database=database,
    )


def _connect_args(settings: DatabaseSettings) -> dict[str, Any]:
    args: dict[str, Any] = {
        "timeout": settings.connect_timeout,
        # asyncpg cancels a statement running longer than this (the cancel request goes
        # through PgBouncer to the server), so no query holds a connection forever.
        "command_timeout": settings.statement_timeout,
        "server_settings": {"application_name": "botstack"},
    }
    if not settings.prepared_statements:
        # PgBouncer < 1.21 hands each transaction any server connection, so a named
        # statement prepared on one may be missing or taken on another: no caches, and a
        # name nobody else uses for each statement.
        args |= {
            "statement_cache_size": 0,
            "prepared_statement_cache_size": 0,
            "prepared_statement_name_func": lambda: f"__asyncpg_{uuid4().hex}__",
        }
    return args


def create_engine(settings: DatabaseSettings) -> AsyncEngine:
    engine = create_async_engine(
        asyncpg_url(
            user=settings.user,
            password=settings.password,
            host=settings.host,
            port=settings.port,
            database=settings.name,
        ),
        pool_size=settings.pool_size,
        max_overflow=settings.max_overflow,
        pool_timeout=settings.pool_timeout,
        pool_pre_ping=False,
        connect_args=_connect_args(settings),
    )
    _ping_idle_connections(engine)
    return engine


def _ping_idle_connections(engine: AsyncEngine) -> None:
    pool = engine.sync_engine.pool

    @event.listens_for(pool, "checkin")
    def _checkin(dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = monotonic()

    @event.listens_for(pool, "checkout")
    def _checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            dbapi_connection.ping()
        except Exception as error:
            # The pool drops this connection and checks out (or opens) another.
            raise exc.DisconnectionError("stale pooled connection") from error
