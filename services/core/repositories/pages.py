"""Keyset pagination, the one helper of every list that pages: rows newest first by
(created_at, id), starting after the key of the previous page's last row, so rows inserted
while a client pages never shift the pages it has not read yet. How a key travels (the admin
API's opaque cursor) is the caller's business."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

Row = TypeVar("Row")
# The sort key of a row: (created_at, id).
Key = tuple[datetime, int]


@dataclass(frozen=True)
class Slice(Generic[Row]):
    rows: list[Row]
    # The key to page on from (`after`); None when this was the last page.
    next: Key | None


def newest_first(
    query: sa.Select[Any], model: Any, after: Key | None, limit: int
) -> sa.Select[Any]:
    """`query` ordered newest first by (created_at, id), after the key, fetching one row past
    the page so `page` can tell whether another page follows. The order of the tables'
    (created_at, id) indexes."""
    created_at, row_id = col(model.created_at), col(model.id)
    if after is not None:
        query = query.where(sa.tuple_(created_at, row_id) < sa.tuple_(*after))
    return query.order_by(created_at.desc(), row_id.desc()).limit(limit + 1)


async def page(
    session: AsyncSession, query: sa.Select[Any], model: Any, after: Key | None, limit: int
) -> Slice[Any]:
    """At most `limit` rows of `query` (filters only, no order) newest first after `after`."""
    rows = list((await session.execute(newest_first(query, model, after, limit))).scalars())
    if len(rows) <= limit:
        return Slice(rows, None)
    rows = rows[:limit]
    return Slice(rows, (rows[-1].created_at, rows[-1].id))
