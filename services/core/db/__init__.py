"""The database layer: engine, unit of work, metrics."""

from .unit_of_work import Database, UnitOfWork

__all__ = ["Database", "UnitOfWork"]
