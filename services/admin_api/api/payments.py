"""Payments: list and filter (read-only: payments come only from Telegram)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Query
from sqlmodel import col

from services.core.schema import Payment

from ..pagination import CURSOR_PATTERN, fetch_page, newest_first
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
    query = sa.select(Payment)
    if user_id is not None:
        query = query.where(col(Payment.user_id) == user_id)
    if product_id is not None:
        query = query.where(col(Payment.product_id) == product_id)
    if created_from is not None:
        query = query.where(col(Payment.created_at) >= created_from)
    if created_to is not None:
        query = query.where(col(Payment.created_at) < created_to)
    query = newest_first(query, Payment, cursor, limit)
    return await fetch_page(database, query, PaymentOut, limit)
