"""Keyset (cursor) pagination: a cursor is the sort key of the last row served, so rows
inserted while a client pages never shift the pages it has not read yet."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from pydantic import BaseModel
from sqlmodel import col

from services.core.db import Database

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


async def fetch_page(
    database: Database, query: sa.Select[Any], out: type[Out], limit: int
) -> Page[Out]:
    """Runs a newest-first query that fetches one row past the page: the first `limit` rows
    as `out`, and the cursor of the next page when that extra row came."""
    async with database.unit_of_work() as uow:
        rows = list((await uow.session.execute(query)).scalars())
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id)
    return Page[out](  # type: ignore[valid-type]
        items=[out.model_validate(row) for row in rows], next_cursor=next_cursor
    )


def newest_first(
    query: sa.Select[Any], model: Any, cursor: str | None, limit: int
) -> sa.Select[Any]:
    """query ordered newest first by (created_at, id), starting after the cursor, fetching one
    row past the page so fetch_page can tell whether another page follows."""
    created_at, row_id = col(model.created_at), col(model.id)
    if cursor is not None:
        query = query.where(sa.tuple_(created_at, row_id) < sa.tuple_(*decode_cursor(cursor)))
    return query.order_by(created_at.desc(), row_id.desc()).limit(limit + 1)
