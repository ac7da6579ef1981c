"""API keys: random tokens shown once, stored as SHA-256 hashes; roles viewer < operator < admin."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from services.core.db import UnitOfWork
from services.core.errors import Conflict
from services.core.schema import ApiKey, Role, Staff

# Recognisable in logs and secret scanners; the rest is 256 bits of randomness.
KEY_PREFIX = "bsk_"
# How many characters of a key are kept in clear to tell keys apart in listings.
SHOWN_PREFIX_LENGTH = 12
# last_used_at is refreshed at most this often, so reads do not all turn into writes.
LAST_USED_RESOLUTION = timedelta(minutes=1)

RANK = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}


def at_least(role: Role, required: Role) -> bool:
    return RANK[role] >= RANK[required]


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Principal:
    """The staff member behind the API key of the current request."""

    staff_id: int
    name: str
    role: Role
    key_id: int


async def authenticate(uow: UnitOfWork, key: str) -> Principal | None:
    """The principal for a live key of an active staff member, or None."""
    holder = await uow.staff.holder(hash_key(key))
    if holder is None:
        return None
    last_used_at = holder.last_used_at
    if last_used_at is None or datetime.now(UTC) - last_used_at > LAST_USED_RESOLUTION:
        await uow.staff.key_used(holder.key_id)
    return Principal(
        staff_id=holder.staff_id, name=holder.name, role=holder.role, key_id=holder.key_id
    )


@dataclass(frozen=True)
class IssuedKey:
    key: str
    record: ApiKey


async def issue_key(uow: UnitOfWork, staff_id: int, name: str) -> IssuedKey:
    """Creates a key for the staff member; the clear key exists only in the return value."""
    key = new_key()
    record = await uow.staff.add_key(staff_id, name, hash_key(key), key[:SHOWN_PREFIX_LENGTH])
    return IssuedKey(key=key, record=record)


async def staff_for_cli(uow: UnitOfWork, name: str, role: Role) -> Staff:
    """The staff member `name`, created with `role` if new. An existing member with another
    role is refused: changing a role is an explicit act, not a side effect of making a key;
    so is a deactivated member (their keys were revoked when they were deactivated)."""
    staff = await uow.staff.named(name)
    if staff is None:
        staff = await uow.staff.save(Staff(name=name, role=role))
    elif staff.role != role:
        raise Conflict(f"staff {name!r} exists with role {staff.role}, not {role}")
    elif not staff.is_active:
        # A key made now would come to life if they were reactivated, which revokes nothing.
        raise Conflict(f"staff {name!r} is deactivated; reactivate them through the admin API")
    return staff
