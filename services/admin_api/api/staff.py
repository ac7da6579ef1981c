"""Staff accounts and their API keys (admins only). A key is shown once, when it is made."""

from __future__ import annotations

from typing import Any, cast

import sqlalchemy as sa
from fastapi import APIRouter
from sqlmodel import col

from services.core.db import UnitOfWork
from services.core.errors import Conflict, NotFound
from services.core.schema import ApiKey, Staff, db_now

from .. import audit
from ..auth import issue_key
from ..patching import changes
from ..problems import problem_responses
from ..schemas import (
    ApiKeyCreate,
    ApiKeyIssued,
    ApiKeyOut,
    StaffCreate,
    StaffOut,
    StaffUpdate,
)
from .deps import Admin, DatabaseDep, Id

router = APIRouter(tags=["staff and API keys"])


async def _staff(uow: UnitOfWork, staff_id: int) -> Staff:
    staff = await uow.session.get(Staff, staff_id, with_for_update=True)
    if staff is None:
        raise NotFound("staff", staff_id)
    return staff


@router.get("/staff", response_model=list[StaffOut])
async def list_staff(database: DatabaseDep, _: Admin) -> list[Staff]:
    async with database.unit_of_work() as uow:
        return list((await uow.session.execute(sa.select(Staff).order_by(col(Staff.id)))).scalars())


@router.post(
    "/staff", response_model=StaffOut, status_code=201, responses=problem_responses(409, 422)
)
async def create_staff(database: DatabaseDep, who: Admin, body: StaffCreate) -> Staff:
    """Adds a staff member; a name or Telegram id already in use is a conflict (409)."""
    async with database.unit_of_work() as uow:
        staff = Staff(**body.model_dump())
        uow.session.add(staff)
        await uow.session.flush()
        await uow.session.refresh(staff)
        audit.record(
            uow, who, "staff.create", "staff", staff.id, {"name": staff.name, "role": staff.role}
        )
    return staff


@router.patch("/staff/{staff_id}", response_model=StaffOut, responses=problem_responses(404, 409))
async def update_staff(database: DatabaseDep, who: Admin, staff_id: Id, body: StaffUpdate) -> Staff:
    """Changes a role or deactivates an account. Deactivating revokes the member's keys, so
    reactivating them later brings no old key back: they get new keys. Admins cannot demote or
    deactivate themselves, so a deployment never loses its last admin by accident."""
    if staff_id == who.staff_id and body.model_fields_set & {"role", "is_active"}:
        raise Conflict("an admin cannot change their own role or deactivate themselves")
    async with database.unit_of_work() as uow:
        staff = await _staff(uow, staff_id)
        summary: dict[str, Any] = changes(staff, body, nullable=frozenset({"telegram_id"}))
        if summary.get("is_active") == [True, False]:
            summary["revoked_key_ids"] = await _revoke_live_keys(uow, staff_id)
        if summary:
            await uow.session.flush()
            await uow.session.refresh(staff)
            audit.record(uow, who, "staff.update", "staff", staff_id, summary)
    return staff


async def _revoke_live_keys(uow: UnitOfWork, staff_id: int) -> list[int]:
    """Revokes every key of the staff member not yet revoked; their ids, in order."""
    revoked = await uow.session.execute(
        sa.update(ApiKey)
        .where(col(ApiKey.staff_id) == staff_id, col(ApiKey.revoked_at).is_(None))
        .values(revoked_at=sa.func.now())
        .returning(col(ApiKey.id))
    )
    return sorted(cast(list[int], revoked.scalars().all()))  # primary keys: never None


@router.get(
    "/staff/{staff_id}/keys", response_model=list[ApiKeyOut], responses=problem_responses(404)
)
async def list_keys(database: DatabaseDep, _: Admin, staff_id: Id) -> list[ApiKey]:
    async with database.unit_of_work() as uow:
        if await uow.session.get(Staff, staff_id) is None:
            raise NotFound("staff", staff_id)
        query = sa.select(ApiKey).where(col(ApiKey.staff_id) == staff_id).order_by(col(ApiKey.id))
        return list((await uow.session.execute(query)).scalars())


@router.post(
    "/staff/{staff_id}/keys",
    response_model=ApiKeyIssued,
    status_code=201,
    responses=problem_responses(404, 409, 422),
)
async def create_key(
    database: DatabaseDep, who: Admin, staff_id: Id, body: ApiKeyCreate
) -> ApiKeyIssued:
    """Issues a key for the staff member. The response is the only place the key appears.
    A deactivated member gets none (409): it would come to life on their reactivation."""
    async with database.unit_of_work() as uow:
        staff = await _staff(uow, staff_id)
        if not staff.is_active:
            raise Conflict(f"staff {staff_id} is deactivated: reactivate them first")
        issued = await issue_key(uow, staff_id, body.name)
        await uow.session.refresh(issued.record)
        audit.record(
            uow,
            who,
            "api_key.create",
            "api_key",
            issued.record.id,
            {"staff_id": staff_id, "name": body.name, "key_prefix": issued.record.key_prefix},
        )
    return ApiKeyIssued(**ApiKeyOut.model_validate(issued.record).model_dump(), key=issued.key)


@router.post(
    "/keys/{key_id}/revoke", response_model=ApiKeyOut, responses=problem_responses(404, 409)
)
async def revoke_key(database: DatabaseDep, who: Admin, key_id: Id) -> ApiKey:
    """Revokes a key: the next request made with it gets 401."""
    async with database.unit_of_work() as uow:
        key = await uow.session.get(ApiKey, key_id, with_for_update=True)
        if key is None:
            raise NotFound("api key", key_id)
        if key.revoked_at is not None:
            raise Conflict(f"api key {key_id} is already revoked")
        key.revoked_at = db_now()
        await uow.session.flush()
        await uow.session.refresh(key)
        audit.record(uow, who, "api_key.revoke", "api_key", key_id, {"staff_id": key.staff_id})
    return key
