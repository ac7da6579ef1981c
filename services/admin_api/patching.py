"""PATCH semantics shared by the routers: every field the body sets is applied (the models
forbid unknown fields, so nothing is silently ignored), null only where the column allows it,
and only real changes count, so a no-op PATCH writes no audit entry."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from .problems import ProblemError


def changes(row: Any, body: BaseModel, nullable: frozenset[str] = frozenset()) -> dict[str, Any]:
    """{field: [old, new]} for every field the body sets to a new value; applied to row."""
    found = {}
    for name, value in body.model_dump(exclude_unset=True).items():
        if value is None and name not in nullable:
            raise ProblemError(422, f"body.{name}: may not be null", field=f"body.{name}")
        if getattr(row, name) != value:
            found[name] = [getattr(row, name), value]
            setattr(row, name, value)
    return found
