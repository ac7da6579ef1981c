"""Analytics over the last N days (UTC days, today included): revenue, top spenders, new and
active users, and ticket figures. Days without activity are listed with zeros."""

from __future__ import annotations

from datetime import date
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Query
from pydantic import BaseModel

from ..problems import problem_responses
from .deps import DatabaseDep, Viewer

router = APIRouter(prefix="/analytics", tags=["analytics"], responses=problem_responses(422))
Days = Annotated[int, Query(ge=1, le=366, description="Days back, today (UTC) included")]

# The UTC days of the window, oldest first: the spine every daily figure is joined onto.
_DAYS = (
    "SELECT generate_series((now() AT TIME ZONE 'UTC')::date - (:days - 1),"
    " (now() AT TIME ZONE 'UTC')::date, interval '1 day')::date AS day"
)
_SINCE = "((now() AT TIME ZONE 'UTC')::date - (:days - 1)) AT TIME ZONE 'UTC'"

REVENUE = sa.text(
    f"WITH days AS ({_DAYS}), paid AS ("
    " SELECT (created_at AT TIME ZONE 'UTC')::date AS day, sum(amount) AS revenue,"
    " count(*) AS payments FROM payments"
    f" WHERE created_at >= {_SINCE} GROUP BY 1)"
    " SELECT days.day, coalesce(paid.revenue, 0) AS revenue,"
    " coalesce(paid.payments, 0) AS payments"
    " FROM days LEFT JOIN paid USING (day) ORDER BY days.day"
)
TOP_USERS = sa.text(
    "SELECT payments.user_id, users.username, sum(payments.amount) AS spend,"
    " count(*) AS payments FROM payments JOIN users ON users.id = payments.user_id"
    f" WHERE payments.created_at >= {_SINCE}"
    " GROUP BY payments.user_id, users.username"
    " ORDER BY spend DESC, payments.user_id LIMIT :limit"
)
USERS = sa.text(
    f"WITH days AS ({_DAYS}),"
    " new AS (SELECT (created_at AT TIME ZONE 'UTC')::date AS day, count(*) AS n FROM users"
    f"  WHERE created_at >= {_SINCE} GROUP BY 1),"
    " active AS (SELECT (created_at AT TIME ZONE 'UTC')::date AS day,"
    "  count(DISTINCT user_id) AS n FROM conversation_messages"
    f"  WHERE direction = 'in' AND created_at >= {_SINCE} GROUP BY 1)"
    " SELECT days.day, coalesce(new.n, 0) AS new_users, coalesce(active.n, 0) AS active_users"
    " FROM days LEFT JOIN new USING (day) LEFT JOIN active USING (day) ORDER BY days.day"
)
TICKETS = sa.text(
    "SELECT"
    " (SELECT count(*) FROM tickets WHERE status IN ('open', 'in_progress')) AS open_now,"
    " percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM"
    "  first_response_at - created_at)) FILTER (WHERE first_response_at IS NOT NULL)"
    "  AS median_first_response_seconds,"
    " percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM"
    "  coalesce(resolved_at, closed_at) - created_at))"
    "  FILTER (WHERE coalesce(resolved_at, closed_at) IS NOT NULL)"
    "  AS median_resolution_seconds"
    f" FROM tickets WHERE created_at >= {_SINCE}"
)


class DailyRevenue(BaseModel):
    day: date
    revenue: int
    payments: int


class TopUser(BaseModel):
    user_id: int
    username: str | None
    spend: int
    payments: int


class DailyUsers(BaseModel):
    day: date
    new_users: int
    active_users: int


class TicketFigures(BaseModel):
    open_now: int
    median_first_response_seconds: float | None
    median_resolution_seconds: float | None


@router.get("/revenue", response_model=list[DailyRevenue])
async def revenue(database: DatabaseDep, _: Viewer, days: Days = 30) -> list[DailyRevenue]:
    """Stars paid per day."""
    async with database.unit_of_work() as uow:
        rows = (await uow.session.execute(REVENUE, {"days": days})).mappings()
        return [DailyRevenue.model_validate(dict(row)) for row in rows]


@router.get("/top-users", response_model=list[TopUser])
async def top_users(
    database: DatabaseDep,
    _: Viewer,
    days: Days = 30,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> list[TopUser]:
    """The users who spent the most stars in the window."""
    async with database.unit_of_work() as uow:
        rows = (await uow.session.execute(TOP_USERS, {"days": days, "limit": limit})).mappings()
        return [TopUser.model_validate(dict(row)) for row in rows]


@router.get("/users", response_model=list[DailyUsers])
async def users(database: DatabaseDep, _: Viewer, days: Days = 30) -> list[DailyUsers]:
    """New users (registered) and active users (wrote to the bot) per day."""
    async with database.unit_of_work() as uow:
        rows = (await uow.session.execute(USERS, {"days": days})).mappings()
        return [DailyUsers.model_validate(dict(row)) for row in rows]


@router.get("/tickets", response_model=TicketFigures)
async def tickets(database: DatabaseDep, _: Viewer, days: Days = 30) -> TicketFigures:
    """Tickets open now, and the median times to first answer and to resolution of tickets
    opened in the window."""
    async with database.unit_of_work() as uow:
        row = (await uow.session.execute(TICKETS, {"days": days})).mappings().one()
        return TicketFigures.model_validate(dict(row))
