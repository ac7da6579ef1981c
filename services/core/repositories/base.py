"""What every repository shares: the session of the unit of work it belongs to."""

from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel

M = TypeVar("M", bound=SQLModel)


class Repository:
    """Reads and writes through the unit of work's session; never commits."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session


def validated(model: type[M], **values: Any) -> M:
    """The model built from values, checked against the schema's field rules first (table
    models skip validation in their constructor). Raises pydantic's ValidationError, which the
    unit of work turns into InvalidInput naming the field."""
    return model.model_validate(values)
