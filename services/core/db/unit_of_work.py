"""The unit of work: one transaction, one commit. Repositories never commit on their own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from time import perf_counter

from prometheus_client import REGISTRY, CollectorRegistry
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from ..errors import CoreError, translate
from ..repositories import Repositories
from ..settings import DatabaseSettings
from .engine import create_engine
from .metrics import DatabaseMetrics


class UnitOfWork(Repositories):
    """The repositories of one transaction, sharing its session."""

    def __init__(self, session: AsyncSession) -> None:
        super().__init__(session)
        self.session = session


class Database:
    """App-scoped: the process's engine, its session factory and its metrics."""

    def __init__(self, settings: DatabaseSettings, registry: CollectorRegistry = REGISTRY) -> None:
        self.settings = settings
        self.engine: AsyncEngine = create_engine(settings)
        self.metrics = DatabaseMetrics(registry)
        self.metrics.instrument(self.engine)
        self._sessions = async_sessionmaker(
            self.engine, class_=AsyncSession, expire_on_commit=False
        )

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[UnitOfWork]:
        """Commits once when the block ends, rolls back if it raises. Database and validation
        errors come out as CoreError subclasses (the driver's error is the __cause__)."""
        try:
            async with self._sessions() as session, session.begin():
                started = perf_counter()
                await session.connection()
                self.metrics.pool_wait.observe(perf_counter() - started)
                yield UnitOfWork(session)
        except CoreError:
            raise
        except Exception as error:
            core_error = translate(error)
            if core_error is None:
                raise
            raise core_error from error

    async def ping(self) -> None:
        """Raises DatabaseUnavailable unless a query round-trips (readiness probes)."""
        async with self.unit_of_work() as uow:
            await uow.session.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
