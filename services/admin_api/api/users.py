"""Users: search and list, detail, block and unblock, credit adjustments."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Query
from sqlmodel import col

from services.core.db import UnitOfWork
from services.core.errors import InvalidInput, NotFound
from services.core.schema import BIGINT_MAX, Appointment, Payment, Ticket, User
from services.core.schema.users import search_text

from .. import audit
from ..pagination import CURSOR_PATTERN, decode_cursor, fetch_page
from ..problems import problem_responses
from ..schemas import (
    NO_NUL,
    AppointmentOut,
    CreditAdjustment,
    Page,
    PaymentOut,
    TicketOut,
    UserDetail,
    UserOut,
)
from .deps import DatabaseDep, Id, Limit, Operator, Viewer

router = APIRouter(prefix="/users", tags=["users"])
# Rows of each kind shown in a user's detail, newest first.
DETAIL_ROWS = 50


def search_condition(q: str) -> sa.ColumnElement[bool]:
    """Username or name containing `q` (one trigram index over the three), or the exact
    Telegram id when `q` is a number."""
    pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    condition = search_text(User.__table__.c).ilike(pattern)  # type: ignore[attr-defined]
    if q.isascii() and q.isdigit() and int(q) <= BIGINT_MAX:  # not "²", which int() refuses
        return sa.or_(condition, col(User.telegram_id) == int(q))
    return condition


def users_query(
    *,
    limit: int,
    q: str | None = None,
    is_active: bool | None = None,
    is_blocked: bool | None = None,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
    after: tuple[datetime, int] | None = None,
) -> sa.Select[User]:
    """Live users newest first, after the (created_at, id) of a previous page's last row:
    the order of the partial index ix_users_live_created."""
    query = sa.select(User).where(col(User.deleted_at).is_(None))
    if q is not None:
        query = query.where(search_condition(q))
    if is_active is not None:
        query = query.where(col(User.is_active) == is_active)
    if is_blocked is not None:
        query = query.where(col(User.is_blocked) == is_blocked)
    if created_from is not None:
        query = query.where(col(User.created_at) >= created_from)
    if created_to is not None:
        query = query.where(col(User.created_at) < created_to)
    if after is not None:
        query = query.where(sa.tuple_(col(User.created_at), col(User.id)) < sa.tuple_(*after))
    return query.order_by(col(User.created_at).desc(), col(User.id).desc()).limit(limit)


@router.get("", response_model=Page[UserOut], responses=problem_responses(422))
async def list_users(
    database: DatabaseDep,
    _: Viewer,
    limit: Limit,
    q: Annotated[
        str | None,
        Query(
            min_length=1, max_length=64, pattern=NO_NUL, description="Username, name or Telegram id"
        ),
    ] = None,
    is_active: bool | None = None,
    is_blocked: bool | None = None,
    created_from: Annotated[datetime | None, Query(description="Created at or after")] = None,
    created_to: Annotated[datetime | None, Query(description="Created before")] = None,
    cursor: Annotated[
        str | None, Query(min_length=1, max_length=200, pattern=CURSOR_PATTERN)
    ] = None,
) -> Page[UserOut]:
    """Live (not erased) users, newest first."""
    query = users_query(
        q=q,
        is_active=is_active,
        is_blocked=is_blocked,
        created_from=created_from,
        created_to=created_to,
        after=None if cursor is None else decode_cursor(cursor),
        limit=limit + 1,
    )
    return await fetch_page(database, query, UserOut, limit)


async def _latest(uow: UnitOfWork, query: sa.Select[Any]) -> list[Any]:
    return list((await uow.session.execute(query.limit(DETAIL_ROWS))).scalars())


@router.get("/{user_id}", response_model=UserDetail, responses=problem_responses(404))
async def get_user(database: DatabaseDep, _: Viewer, user_id: Id) -> UserDetail:
    """The user with their latest tickets, appointments and payments."""
    async with database.unit_of_work() as uow:
        user = await uow.users.get(user_id)
        tickets = await _latest(
            uow,
            sa.select(Ticket)
            .where(col(Ticket.user_id) == user_id)
            .order_by(col(Ticket.created_at).desc()),
        )
        appointments = await _latest(
            uow,
            sa.select(Appointment)
            .where(col(Appointment.user_id) == user_id)
            .order_by(col(Appointment.starts_at).desc()),
        )
        payments = await _latest(
            uow,
            sa.select(Payment)
            .where(col(Payment.user_id) == user_id)
            .order_by(col(Payment.created_at).desc()),
        )
    return UserDetail(
        user=UserOut.model_validate(user),
        tickets=[TicketOut.model_validate(row) for row in tickets],
        appointments=[AppointmentOut.model_validate(row) for row in appointments],
        payments=[PaymentOut.model_validate(row) for row in payments],
    )


async def _set_blocked(database: DatabaseDep, who: Operator, user_id: Id, blocked: bool) -> User:
    """Blocks or unblocks; a user already in that state is answered as they are, with no write
    and no audit entry (the log holds changes only)."""
    async with database.unit_of_work() as uow:
        # Locked: of two concurrent identical requests, the second sees the first's change.
        user = await uow.session.get(User, user_id, with_for_update=True)
        if user is None:
            raise NotFound("user", user_id)
        was = user.is_blocked
        if was == blocked:
            return user
        user.is_blocked = blocked
        await uow.session.flush()
        await uow.session.refresh(user)
        action = "user.block" if blocked else "user.unblock"
        audit.record(uow, who, action, "user", user_id, {"is_blocked": [was, blocked]})
    return user


@router.post("/{user_id}/block", response_model=UserOut, responses=problem_responses(404))
async def block_user(database: DatabaseDep, who: Operator, user_id: Id) -> User:
    """Stops serving the user (the bot ignores a blocked user)."""
    return await _set_blocked(database, who, user_id, True)


@router.post("/{user_id}/unblock", response_model=UserOut, responses=problem_responses(404))
async def unblock_user(database: DatabaseDep, who: Operator, user_id: Id) -> User:
    return await _set_blocked(database, who, user_id, False)


@router.post("/{user_id}/credits", response_model=UserOut, responses=problem_responses(404, 422))
async def adjust_credits(
    database: DatabaseDep, who: Operator, user_id: Id, change: CreditAdjustment
) -> User:
    """Adds (or, with a negative delta, takes) credits; a balance below zero is refused (422)."""
    try:
        async with database.unit_of_work() as uow:
            balance = await uow.billing.change_credits(
                user_id, change.delta, change.reason, staff_id=who.staff_id
            )
            user = await uow.users.get(user_id)
            await uow.session.refresh(user)
            audit.record(
                uow,
                who,
                "user.credits",
                "user",
                user_id,
                {"delta": change.delta, "balance_after": balance, "reason": change.reason},
            )
    except InvalidInput as error:
        if error.field == "credits":  # the database's check: the balance would go negative
            raise InvalidInput("would take the balance below zero", "delta") from error
        raise
    return user
