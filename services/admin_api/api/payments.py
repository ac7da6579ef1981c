"""Payments: list and filter (read-only: payments come only from Telegram)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from ..pagination import CURSOR_PATTERN, after, to_page
from ..problems import problem_responses
from ..schemas import Page, PaymentOut
from .deps import DatabaseDep, IdFilter, Limit, Viewer

router = APIRouter(prefix="/payments", tags=["payments"])


@router.get("", response_model=Page[PaymentOut], responses=problem_responses(422))
async def list_payments(
    database: DatabaseDep,
    _: Viewer,
    limit: Limit,
    user_id: IdFilter = None,
    product_id: IdFilter = None,
    created_from: Annotated[datetime | None, Query(description="At or after")] = None,
    created_to: Annotated[datetime | None, Query(description="Before")] = None,
    cursor: Annotated[
        str | None, Query(min_length=1, max_length=200, pattern=CURSOR_PATTERN)
    ] = None,
) -> Page[PaymentOut]:
    """Payments newest first."""
    start = after(cursor)
    async with database.unit_of_work() as uow:
        found = await uow.billing.payments(
            user_id=user_id,
            product_id=product_id,
            created_from=created_from,
            created_to=created_to,
            after=start,
            limit=limit,
        )
    return to_page(found, PaymentOut)
