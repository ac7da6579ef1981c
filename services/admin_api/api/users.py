"""Users: search and list, detail, block and unblock, credit adjustments."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from services.core.errors import InvalidInput
from services.core.schema import User

from .. import audit
from ..pagination import CURSOR_PATTERN, after, to_page
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
    start = after(cursor)
    async with database.unit_of_work() as uow:
        found = await uow.users.search(
            q=q,
            is_active=is_active,
            is_blocked=is_blocked,
            created_from=created_from,
            created_to=created_to,
            after=start,
            limit=limit,
        )
    return to_page(found, UserOut)


@router.get("/{user_id}", response_model=UserDetail, responses=problem_responses(404))
async def get_user(database: DatabaseDep, _: Viewer, user_id: Id) -> UserDetail:
    """The user with their latest tickets, appointments and payments."""
    async with database.unit_of_work() as uow:
        user = await uow.users.get(user_id)
        history = await uow.users.history(user_id, DETAIL_ROWS)
    return UserDetail(
        user=UserOut.model_validate(user),
        tickets=[TicketOut.model_validate(row) for row in history.tickets],
        appointments=[AppointmentOut.model_validate(row) for row in history.appointments],
        payments=[PaymentOut.model_validate(row) for row in history.payments],
    )


async def _set_blocked(database: DatabaseDep, who: Operator, user_id: Id, blocked: bool) -> User:
    """Blocks or unblocks; a user already in that state is answered as they are, with no write
    and no audit entry (the log holds changes only)."""
    async with database.unit_of_work() as uow:
        user, was = await uow.users.set_blocked(user_id, blocked)
        if was != blocked:
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
            user = await uow.users.reload(await uow.users.get(user_id))
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
