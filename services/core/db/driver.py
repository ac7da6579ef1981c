"""Statements sent straight to asyncpg, inside the unit of work's transaction.

For the bot's per-update path (record the update, upsert the user, log the message) the
SQLAlchemy session costs more CPU per statement than the database does: measured here, it
halves the transactions per second one process can push through PgBouncer. Those few
statements are written in SQL and run on the same connection and transaction as the session,
with the same metrics; everything else goes through the session.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from time import perf_counter
from typing import Any

from .metrics import DatabaseMetrics, operation_of


class Sql:
    """`begin` (the unit of work's) is awaited before each statement: it sends BEGIN before the
    first one, and does nothing after. `alone` runs statements without it: each is then its
    own implicit transaction (atomic on its own), one round trip, no BEGIN or COMMIT."""

    def __init__(
        self,
        connection: Any,
        metrics: DatabaseMetrics,
        begin: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._connection = connection  # asyncpg.Connection (asyncpg ships no type hints)
        self._metrics = metrics
        self._begin = begin

    @property
    def alone(self) -> Sql:
        return Sql(self._connection, self._metrics)

    async def fetchval(self, query: str, *args: Any) -> Any:
        return await self._run(self._connection.fetchval, query, args)

    async def fetchrow(self, query: str, *args: Any) -> Any:
        return await self._run(self._connection.fetchrow, query, args)

    async def execute(self, query: str, *args: Any) -> None:
        await self._run(self._connection.execute, query, args)

    async def _run(self, method: Any, query: str, args: tuple[Any, ...]) -> Any:
        if self._begin is not None:
            await self._begin()
        operation = operation_of(query)
        started = perf_counter()
        try:
            return await method(query, *args)
        except Exception as error:
            self._metrics.count_error(error)
            raise
        finally:
            self._metrics.observe(operation, perf_counter() - started)
