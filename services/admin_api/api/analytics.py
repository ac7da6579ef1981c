"""Analytics over the last N days (UTC days, today included): revenue, top spenders, new and
active users, and ticket figures. Days without activity are listed with zeros."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from ..problems import problem_responses
from .deps import DatabaseDep, Viewer

router = APIRouter(prefix="/analytics", tags=["analytics"], responses=problem_responses(422))
Days = Annotated[int, Query(ge=1, le=366, description="Days back, today (UTC) included")]


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
        rows = await uow.analytics.revenue(days)
    return [DailyRevenue.model_validate(row) for row in rows]


@router.get("/top-users", response_model=list[TopUser])
async def top_users(
    database: DatabaseDep,
    _: Viewer,
    days: Days = 30,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> list[TopUser]:
    """The users who spent the most stars in the window."""
    async with database.unit_of_work() as uow:
        rows = await uow.analytics.top_users(days, limit)
    return [TopUser.model_validate(row) for row in rows]


@router.get("/users", response_model=list[DailyUsers])
async def users(database: DatabaseDep, _: Viewer, days: Days = 30) -> list[DailyUsers]:
    """New users (registered) and active users (wrote to the bot) per day."""
    async with database.unit_of_work() as uow:
        rows = await uow.analytics.users(days)
    return [DailyUsers.model_validate(row) for row in rows]


@router.get("/tickets", response_model=TicketFigures)
async def tickets(database: DatabaseDep, _: Viewer, days: Days = 30) -> TicketFigures:
    """Tickets open now, and the median times to first answer and to resolution of tickets
    opened in the window."""
    async with database.unit_of_work() as uow:
        row = await uow.analytics.tickets(days)
    return TicketFigures.model_validate(row)
