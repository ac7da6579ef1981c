"""What every repository shares: the unit of work's session and driver, and input checks."""

from functools import cache
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, create_model
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel

from ..db.driver import Sql


class Transaction(Protocol):
    """What repositories need of the unit of work they belong to."""

    @property
    def session(self) -> AsyncSession: ...

    @property
    def sql(self) -> Sql: ...


Saved = TypeVar("Saved", bound=SQLModel)


class Repository:
    """Reads and writes through the unit of work's session or driver; never commits."""

    def __init__(self, transaction: Transaction) -> None:
        self._transaction = transaction

    @property
    def session(self) -> AsyncSession:
        return self._transaction.session

    @property
    def sql(self) -> Sql:
        return self._transaction.sql

    async def save(self, row: Saved) -> Saved:
        """Writes a new or changed row now and reads it back as the database has it (ids,
        defaults, timestamps), still in the unit of work's transaction."""
        self.session.add(row)
        await self.session.flush()
        await self.session.refresh(row)
        return row

    async def reload(self, row: Saved) -> Saved:
        """The row as the database has it now (what statements of this transaction wrote)."""
        await self.session.refresh(row)
        return row


@cache
def _rules(model: type[SQLModel]) -> type[BaseModel]:
    """A plain pydantic model with the table model's fields and their rules (lengths, ranges).
    Validating a table model itself costs about 25 times more, too much for the hot path."""
    fields: Any = {name: (info.annotation, info) for name, info in model.model_fields.items()}
    return create_model(f"{model.__name__}Input", **fields)


def checked(model: type[SQLModel], **values: Any) -> Any:
    """The values checked against the schema's rules for `model`, as an object with the
    model's fields. Raises pydantic's ValidationError, which the unit of work turns into
    InvalidInput naming the field."""
    return _rules(model).model_validate(values)
