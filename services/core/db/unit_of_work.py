"""The unit of work: one transaction, one commit. Repositories never commit on their own.

The transaction begins at the block's first statement, not when the block is entered: an
update the handlers answer from memory needs no BEGIN and no COMMIT, and its own writes
(`Deferred`) go out as one statement, which PostgreSQL applies atomically on its own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from time import perf_counter
from typing import Any, Protocol

from prometheus_client import REGISTRY, CollectorRegistry
from sqlalchemy import Connection, Engine, event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.util import await_only, greenlet_spawn

from ..errors import CoreError, DatabaseUnavailable, translate
from ..repositories import Repositories
from ..settings import DatabaseSettings
from .driver import Sql
from .engine import create_engine
from .metrics import DatabaseMetrics


class Deferred(Protocol):
    """Writes a unit of work makes on its own account, at the edges of the block: inside the
    transaction when the block begins one, as one statement of their own when it does not."""

    async def begun(self, sql: Sql) -> None:
        """Right after BEGIN, before the block's first statement (which sent it)."""

    async def ending(self, sql: Sql, *, begun: bool) -> None:
        """The block ended without error: in its transaction before COMMIT if it began one,
        else on `sql.alone`, where one statement is atomic without BEGIN and COMMIT."""


class UnitOfWork(Repositories):
    """One transaction on one pooled connection, begun at the first statement. `sql` sends
    the hot path's plain statements to the driver; `session` (opened on first use, since most
    updates never need it) runs SQLAlchemy queries and ORM changes in the same transaction."""

    def __init__(
        self, engine: AsyncEngine, connection: Connection, adapter: Any, metrics: DatabaseMetrics
    ) -> None:
        self._engine = engine
        self._connection = connection
        self._adapter = adapter  # SQLAlchemy's adapter of the asyncpg connection
        self._metrics = metrics
        self._session: AsyncSession | None = None
        self._deferred: Deferred | None = None
        self.begun = False
        self.sql = Sql(adapter.driver_connection, metrics, self._begin)
        super().__init__(self)

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            bind = AsyncConnection(self._engine, self._connection)
            self._session = AsyncSession(bind=bind, expire_on_commit=False)
        return self._session

    def defer(self, deferred: Deferred) -> None:
        """Before the block's first statement: `deferred` writes at BEGIN and at the end."""
        if self.begun:
            raise RuntimeError("deferred writes must be given before the first statement")
        self._deferred = deferred

    async def _begin(self) -> None:
        """Sends BEGIN (once), then the deferred writes."""
        if self.begun:
            return
        self.begun = True
        try:
            await _begin(self._adapter)
        except Exception as error:
            # BEGIN goes past SQLAlchemy's statement events: counted here (PgBouncer fails
            # it when PostgreSQL is down), with its attempt, since no statement ran.
            self._metrics.count_failed_attempt(error, "begin")
            raise
        if self._deferred is not None:
            await self._deferred.begun(self.sql)

    async def _end(self) -> None:
        if self._session is not None:
            await self._session.flush()
        if self._deferred is not None:
            sql = self.sql if self.begun else self.sql.alone
            await self._deferred.ending(sql, begun=self.begun)

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


# The key of a checked-out connection's info that holds its unit of work (popped at the end:
# the info dictionary lives as long as the pooled connection).
UOW_INFO = "botstack_unit_of_work"


def _begin_before_statement(conn: Any, *args: Any) -> None:
    """A statement through SQLAlchemy (the session) begins the unit of work first, so the
    deferred writes come before it. Runs in SQLAlchemy's greenlet, where await_only waits."""
    uow = conn.info.get(UOW_INFO)
    if uow is not None and not uow.begun:
        await_only(uow._begin())


def _open(engine: Engine) -> Connection:
    """In SQLAlchemy's greenlet: a pooled connection with its transaction begun."""
    connection = engine.connect()
    try:
        connection.begin()
    except BaseException:
        connection.close()
        raise
    return connection


def _finish(connection: Connection, pooled: Any, commit: bool) -> None:
    """In SQLAlchemy's greenlet: COMMIT (only if BEGIN was sent) or ROLLBACK, and the
    connection back to the pool. A connection that broke outside SQLAlchemy's sight (PgBouncer
    closes a client it gave up on) is invalidated instead of going back."""
    try:
        try:
            if commit:
                connection.commit()
                return
            connection.rollback()
        except BaseException:
            _invalidate_if_closed(connection, pooled)
            raise
        _invalidate_if_closed(connection, pooled)
    finally:
        connection.close()


def _invalidate_if_closed(connection: Connection, pooled: Any) -> None:
    driver = pooled.driver_connection  # None once SQLAlchemy invalidated it
    if driver is not None and driver.is_closed():
        connection.invalidate()


class Database:
    """App-scoped: the process's engine, its session factory and its metrics."""

    def __init__(self, settings: DatabaseSettings, registry: CollectorRegistry = REGISTRY) -> None:
        self.settings = settings
        self.engine: AsyncEngine = create_engine(settings)
        self.metrics = DatabaseMetrics(registry)
        # Before the metrics' hook, so BEGIN's time is not counted as the statement's.
        event.listen(self.engine.sync_engine, "before_cursor_execute", _begin_before_statement)
        self.metrics.instrument(self.engine)

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[UnitOfWork]:
        """Commits once when the block ends, rolls back if it raises. Database and validation
        errors come out as CoreError subclasses (the driver's error is the __cause__)."""
        try:
            started = perf_counter()
            connection = await self._connect()
            self.metrics.pool_wait.observe(perf_counter() - started)
            # Checked out already: reading it costs no round trip. Held here, since once the
            # connection is invalidated, reading it again reconnects.
            pooled = connection.connection
            committed = False
            uow = UnitOfWork(self.engine, connection, pooled.dbapi_connection, self.metrics)
            info = connection.info
            info[UOW_INFO] = uow
            try:
                try:
                    yield uow
                    await uow._end()
                finally:
                    await uow._close()
                committed = True
            finally:
                info.pop(UOW_INFO, None)
                await greenlet_spawn(_finish, connection, pooled, committed)
        except Exception as error:
            core_error = error if isinstance(error, CoreError) else translate(error)
            if core_error is None:
                raise
            if core_error is error:
                raise
            raise core_error from error

    async def _connect(self) -> Connection:
        """A pooled connection in a transaction begun (SQLAlchemy's: no round trip; BEGIN is
        sent at the first statement, by uow._begin), in one pass through SQLAlchemy's greenlet
        bridge: each pass costs about as much as a statement's CPU, and the async API's
        connect, begin, commit and close take one each. A failure here is counted in
        db_errors_total (and as an attempt): no statement ran, so no statement event counts
        it, and an outage would look like silence."""
        try:
            return await greenlet_spawn(_open, self.engine.sync_engine)
        except sa_exc.ResourceClosedError as error:
            # What SQLAlchemy raises when its first-connect setup (the dialect's initial
            # queries) meets PgBouncer with PostgreSQL down: the real cause is dropped.
            unavailable = DatabaseUnavailable("cannot open a database connection")
            self.metrics.count_failed_attempt(unavailable, "connect")
            raise unavailable from error
        except Exception as error:
            self.metrics.count_failed_attempt(error, "connect")
            raise

    async def ping(self) -> None:
        """Raises DatabaseUnavailable unless a query round-trips (readiness probes)."""
        async with self.unit_of_work() as uow:
            await uow.session.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
