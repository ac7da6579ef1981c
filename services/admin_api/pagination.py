"""The admin API's cursors: a cursor is the core's page key (services/core/repositories/
pages.py) of the last row served, encoded opaquely."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel

from services.core.repositories.pages import Key, Slice

from .problems import ProblemError
from .schemas import ID_MAX, Page

Out = TypeVar("Out", bound=BaseModel)

# Cursors are unpadded base64url.
CURSOR_PATTERN = r"^[A-Za-z0-9_-]+$"


def encode_cursor(created_at: datetime | None, row_id: int | None) -> str:
    payload = json.dumps([created_at.isoformat() if created_at else None, row_id])
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """The sort key in a cursor, checked as the database would need it: a forged one is a 422
    here, never a driver error (or an overflow) later."""
    refused = ProblemError(422, "query.cursor: not a cursor this API issued", field="query.cursor")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, row_id = json.loads(raw)
        moment = datetime.fromisoformat(created_at)
    except (ValueError, TypeError, OverflowError) as error:
        raise refused from error
    valid_id = isinstance(row_id, int) and not isinstance(row_id, bool) and 0 < row_id <= ID_MAX
    if not valid_id or moment.tzinfo is None:
        raise refused
    return moment, row_id


def after(cursor: str | None) -> Key | None:
    """The page key a request's cursor names; None (the first page) without one."""
    return None if cursor is None else decode_cursor(cursor)


def to_page(found: Slice[Any], out: type[Out]) -> Page[Out]:
    """A core page as the API serves it: the rows as `out`, and the next page's cursor."""
    next_cursor = None if found.next is None else encode_cursor(*found.next)
    return Page[out](  # type: ignore[valid-type]
        items=[out.model_validate(row) for row in found.rows], next_cursor=next_cursor
    )
