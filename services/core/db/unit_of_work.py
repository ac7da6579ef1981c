"""The unit of work: one transaction, one commit. Repositories never commit on their own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from time import perf_counter
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from ..errors import CoreError, DatabaseUnavailable, translate
from ..repositories import Repositories
from ..settings import DatabaseSettings
from .driver import Sql
from .engine import create_engine
from .metrics import DatabaseMetrics


class UnitOfWork(Repositories):
    """One transaction on one pooled connection. `sql` sends the hot path's plain statements to
    the driver; `session` (opened on first use, since most updates never need it) runs
    SQLAlchemy queries and ORM changes in the same transaction."""

    def __init__(self, connection: AsyncConnection, sql: Sql) -> None:
        self.sql = sql
        self._connection = connection
        self._session: AsyncSession | None = None
        super().__init__(self)

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            self._session = AsyncSession(bind=self._connection, expire_on_commit=False)
        return self._session

    async def _flush(self) -> None:
        if self._session is not None:
            await self._session.flush()

    async def _close(self) -> None:
        if self._session is not None:
            await self._session.close()


async def _begin(adapter: Any) -> None:
    """Sends BEGIN now, on SQLAlchemy's asyncpg adapter.

    The adapter begins lazily, at its first statement; statements sent to the driver directly
    would run outside any transaction. Starting the adapter's transaction here makes the
    driver's statements, SQLAlchemy's, and the connection's commit or rollback share this one.
    """
    if adapter._transaction is None:
        await adapter._start_transaction()


class Database:
    """App-scoped: the process's engine, its session factory and its metrics."""

    def __init__(self, settings: DatabaseSettings, registry: CollectorRegistry = REGISTRY) -> None:
        self.settings = settings
        self.engine: AsyncEngine = create_engine(settings)
        self.metrics = DatabaseMetrics(registry)
        self.metrics.instrument(self.engine)

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[UnitOfWork]:
        """Commits once when the block ends, rolls back if it raises. Database and validation
        errors come out as CoreError subclasses (the driver's error is the __cause__)."""
        try:
            started = perf_counter()
            connection = await self._connect()
            self.metrics.pool_wait.observe(perf_counter() - started)
            try:
                raw = await connection.get_raw_connection()
                try:
                    async with connection.begin():
                        try:
                            await _begin(raw.dbapi_connection)
                        except Exception as error:
                            # BEGIN goes past SQLAlchemy's statement events: counted here
                            # (PgBouncer fails it when PostgreSQL is down).
                            self.metrics.count_error(error)
                            raise
                        uow = UnitOfWork(connection, Sql(raw.driver_connection, self.metrics))
                        try:
                            yield uow
                            await uow._flush()
                        finally:
                            await uow._close()
                except BaseException:
                    # A connection that broke outside SQLAlchemy's sight (PgBouncer closes a
                    # client it gave up on) must not go back to the pool.
                    driver = raw.driver_connection  # None once SQLAlchemy invalidated it
                    if driver is not None and driver.is_closed():
                        await connection.invalidate()
                    raise
            finally:
                await connection.close()
        except Exception as error:
            core_error = error if isinstance(error, CoreError) else translate(error)
            if core_error is None:
                raise
            if core_error is error:
                raise
            raise core_error from error

    async def _connect(self) -> AsyncConnection:
        """A pooled connection. A failure here is counted in db_errors_total: no statement
        ran, so no statement event counts it, and an outage would look like silence."""
        try:
            return await self.engine.connect().start()
        except sa_exc.ResourceClosedError as error:
            # What SQLAlchemy raises when its first-connect setup (the dialect's initial
            # queries) meets PgBouncer with PostgreSQL down: the real cause is dropped.
            unavailable = DatabaseUnavailable("cannot open a database connection")
            self.metrics.count_error(unavailable)
            raise unavailable from error
        except Exception as error:
            self.metrics.count_error(error)
            raise

    async def ping(self) -> None:
        """Raises DatabaseUnavailable unless a query round-trips (readiness probes)."""
        async with self.unit_of_work() as uow:
            await uow.session.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
