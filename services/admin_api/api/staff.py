"""Staff accounts and their API keys (admins only). A key is shown once, when it is made."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from services.core.errors import Conflict
from services.core.schema import ApiKey, Staff

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


@router.get("/staff", response_model=list[StaffOut])
async def list_staff(database: DatabaseDep, _: Admin) -> list[Staff]:
    async with database.unit_of_work() as uow:
        return await uow.staff.all()


@router.post(
    "/staff", response_model=StaffOut, status_code=201, responses=problem_responses(409, 422)
)
async def create_staff(database: DatabaseDep, who: Admin, body: StaffCreate) -> Staff:
    """Adds a staff member; a name or Telegram id already in use is a conflict (409)."""
    async with database.unit_of_work() as uow:
        staff = await uow.staff.save(Staff(**body.model_dump()))
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
        staff = await uow.staff.get(staff_id, lock=True)
        summary: dict[str, Any] = changes(staff, body, nullable=frozenset({"telegram_id"}))
        if summary.get("is_active") == [True, False]:
            summary["revoked_key_ids"] = await uow.staff.revoke_live_keys(staff_id)
        if summary:
            await uow.staff.save(staff)
            audit.record(uow, who, "staff.update", "staff", staff_id, summary)
    return staff


@router.get(
    "/staff/{staff_id}/keys", response_model=list[ApiKeyOut], responses=problem_responses(404)
)
async def list_keys(database: DatabaseDep, _: Admin, staff_id: Id) -> list[ApiKey]:
    async with database.unit_of_work() as uow:
        return await uow.staff.keys(staff_id)


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
        staff = await uow.staff.get(staff_id, lock=True)
        if not staff.is_active:
            raise Conflict(f"staff {staff_id} is deactivated: reactivate them first")
        issued = await issue_key(uow, staff_id, body.name)
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
        key = await uow.staff.key(key_id, lock=True)
        if key.revoked_at is not None:
            raise Conflict(f"api key {key_id} is already revoked")
        await uow.staff.revoke(key)
        audit.record(uow, who, "api_key.revoke", "api_key", key_id, {"staff_id": key.staff_id})
    return key
