"""Prometheus metrics of the database layer. Labels stay low-cardinality: the operation
(select, insert, update, delete, other) and the error kind, never SQL text or ids."""

from __future__ import annotations

from collections.abc import Iterator
from time import perf_counter
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

from ..errors import (
    Conflict,
    DatabaseError,
    DatabaseUnavailable,
    InvalidInput,
    NotFound,
    translate,
)

# Past the 5 s slow-query alert threshold, so the histogram can show how slow.
QUERY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
WAIT_BUCKETS = (0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
OPERATIONS = ("select", "insert", "update", "delete")
# The kind label of db_errors_total: a CoreError's kind, or "other" for anything else.
ERROR_KINDS = (
    *(e.kind for e in (NotFound, Conflict, InvalidInput, DatabaseUnavailable, DatabaseError)),
    "other",
)


# db_queries_total's operation for an attempt that failed before any statement ran.
FAILED_BEFORE_A_STATEMENT = ("connect", "begin")


def operation_of(statement: str) -> str:
    """The operation label of a statement: its first keyword, or 'other'."""
    head = statement.lstrip()[:6].lower()
    return head if head in OPERATIONS else "other"


class _PoolCollector(Collector):
    """Reads the pool's state at scrape time, so the gauges are never stale."""

    def __init__(self, pool: QueuePool) -> None:
        self._pool = pool

    def collect(self) -> Iterator[GaugeMetricFamily]:
        pool = self._pool
        capacity = pool.size() + pool._max_overflow
        checked_out = pool.checkedout()
        yield GaugeMetricFamily("db_pool_size", "Configured pool size", pool.size())
        yield GaugeMetricFamily(
            "db_pool_max_connections", "Pool size plus allowed overflow", capacity
        )
        yield GaugeMetricFamily("db_pool_checked_out", "Connections currently in use", checked_out)
        yield GaugeMetricFamily(
            "db_pool_overflow", "Connections open beyond the pool size", max(pool.overflow(), 0)
        )
        yield GaugeMetricFamily(
            "db_pool_utilization",
            "Connections in use over the maximum the pool may open (0 to 1)",
            checked_out / capacity if capacity else 0.0,
        )


class DatabaseMetrics:
    """The metrics of one engine, registered on one registry (the process default in services,
    a fresh one per engine in tests)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.pool_wait = Histogram(
            "db_pool_wait_seconds",
            "Time spent waiting for a pooled connection",
            buckets=WAIT_BUCKETS,
            registry=registry,
        )
        self.query_duration = Histogram(
            "db_query_duration_seconds",
            "Statement execution time by operation",
            ["operation"],
            buckets=QUERY_BUCKETS,
            registry=registry,
        )
        self.queries = Counter(
            "db_queries",
            "Statements executed by operation; a connection or BEGIN that failed (no statement "
            "ran) counts once as operation connect or begin, so every error has its attempt",
            ["operation"],
            registry=registry,
        )
        self.errors = Counter(
            "db_errors", "Failed attempts (one per failure) by kind", ["kind"], registry=registry
        )
        # Children per operation made once: labels() on every statement is measurable on the
        # hot path. Creating them up front also exports zeros before the first query.
        self._by_operation = {
            operation: (self.queries.labels(operation), self.query_duration.labels(operation))
            for operation in (*OPERATIONS, "other")
        }
        # Every kind at zero from the start, so an error ratio has data before the first error;
        # so are the attempts that fail before a statement: a series born at its first
        # increment loses that increment to rate(), and the ratio read over 100%.
        for kind in ERROR_KINDS:
            self.errors.labels(kind)
        for stage in FAILED_BEFORE_A_STATEMENT:
            self.queries.labels(stage)

    def instrument(self, engine: AsyncEngine) -> None:
        pool = engine.sync_engine.pool
        if isinstance(pool, QueuePool):
            self.registry.register(_PoolCollector(pool))
        sync_engine = engine.sync_engine
        event.listen(sync_engine, "before_cursor_execute", self._before)
        event.listen(sync_engine, "after_cursor_execute", self._after)
        event.listen(sync_engine, "handle_error", self._error)

    @staticmethod
    def _before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        conn.info["query_started"] = perf_counter()

    def _after(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self._observe(conn, statement)

    def _observe(self, conn: Any, statement: str) -> None:
        started = conn.info.pop("query_started", None)
        if started is not None:
            self.observe(operation_of(statement), perf_counter() - started)

    def observe(self, operation: str, seconds: float) -> None:
        count, duration = self._by_operation[operation]
        count.inc()
        duration.observe(seconds)

    def count_error(self, error: BaseException) -> None:
        """Count a failure once, however many layers see it go by (a BEGIN sent from
        SQLAlchemy's statement event fails in the unit of work and again in handle_error)."""
        if _counted(error):
            return
        setattr(error, _COUNTED, True)
        translated = translate(error)
        self.errors.labels(translated.kind if translated else "other").inc()

    def count_failed_attempt(self, error: BaseException, stage: str) -> None:
        """A failure before any statement ran (stage: connect or begin): its error and its
        attempt, so errors never outnumber attempts (DatabaseErrorRate stays within 100%)."""
        self.count_error(error)
        self.queries.labels(stage).inc()

    def _error(self, context: Any) -> None:
        self.count_error(context.sqlalchemy_exception or context.original_exception)
        if context.connection is not None and context.statement is not None:
            self._observe(context.connection, context.statement)


# Set on an exception counted in db_errors_total (exceptions take attributes).
_COUNTED = "_botstack_db_error_counted"


def _counted(error: BaseException) -> bool:
    """error, or one it wraps (SQLAlchemy's .orig, a `raise ... from`), was counted already.
    Not the error being handled when it was raised (__context__): a new attempt made in an
    except block is a failure of its own."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if getattr(current, _COUNTED, False):
            return True
        wrapped = getattr(current, "orig", None)
        pending += [wrapped if isinstance(wrapped, BaseException) else None, current.__cause__]
    return False
