"""Staff members and their API keys. The keys' secrets (making them, hashing them) are the
admin API's (services/admin_api/auth.py); stored here are hashes and who holds them."""

from datetime import datetime
from typing import NamedTuple, cast

import sqlalchemy as sa
from sqlmodel import col

from ..errors import NotFound
from ..schema import ApiKey, Role, Staff, db_now
from .base import Repository


class KeyHolder(NamedTuple):
    """A live key of an active staff member, and who that is."""

    key_id: int
    last_used_at: datetime | None
    staff_id: int
    name: str
    role: Role


class StaffRepository(Repository):
    async def get(self, staff_id: int, *, lock: bool = False) -> Staff:
        staff = await self.session.get(Staff, staff_id, with_for_update=lock)
        if staff is None:
            raise NotFound("staff", staff_id)
        return staff

    async def named(self, name: str) -> Staff | None:
        result = await self.session.execute(sa.select(Staff).where(col(Staff.name) == name))
        return result.scalar_one_or_none()

    async def all(self) -> list[Staff]:
        """Every staff member, active or not, by id."""
        return list(
            (await self.session.execute(sa.select(Staff).order_by(col(Staff.id)))).scalars()
        )

    async def holder(self, key_hash: str) -> KeyHolder | None:
        """Whose key has this hash: only a key not revoked, of a member still active."""
        row = (
            await self.session.execute(
                sa.select(
                    col(ApiKey.id),
                    col(ApiKey.last_used_at),
                    col(Staff.id),
                    col(Staff.name),
                    col(Staff.role),
                )
                .join(Staff, col(Staff.id) == col(ApiKey.staff_id))
                .where(
                    col(ApiKey.key_hash) == key_hash,
                    col(ApiKey.revoked_at).is_(None),
                    col(Staff.is_active),
                )
            )
        ).one_or_none()
        if row is None:
            return None
        key_id, last_used_at, staff_id, name, role = row
        assert key_id is not None and staff_id is not None  # primary keys of selected rows
        return KeyHolder(key_id, last_used_at, staff_id, name, Role(role))

    async def key_used(self, key_id: int) -> None:
        """Stamps the key's last_used_at with the database's now."""
        await self.session.execute(
            sa.update(ApiKey).where(col(ApiKey.id) == key_id).values(last_used_at=sa.func.now())
        )

    async def add_key(self, staff_id: int, name: str, key_hash: str, key_prefix: str) -> ApiKey:
        """Stores a new key (its hash and shown prefix) as the database has it."""
        return await self.save(
            ApiKey(staff_id=staff_id, name=name, key_hash=key_hash, key_prefix=key_prefix)
        )

    async def keys(self, staff_id: int) -> list[ApiKey]:
        """The member's keys, revoked ones too, by id; NotFound for no such member."""
        await self.get(staff_id)
        query = sa.select(ApiKey).where(col(ApiKey.staff_id) == staff_id).order_by(col(ApiKey.id))
        return list((await self.session.execute(query)).scalars())

    async def key(self, key_id: int, *, lock: bool = False) -> ApiKey:
        key = await self.session.get(ApiKey, key_id, with_for_update=lock)
        if key is None:
            raise NotFound("api key", key_id)
        return key

    async def revoke(self, key: ApiKey) -> ApiKey:
        """The key revoked now, as the database has it."""
        key.revoked_at = db_now()
        return await self.save(key)

    async def revoke_live_keys(self, staff_id: int) -> list[int]:
        """Revokes every key of the staff member not yet revoked; their ids, in order."""
        revoked = await self.session.execute(
            sa.update(ApiKey)
            .where(col(ApiKey.staff_id) == staff_id, col(ApiKey.revoked_at).is_(None))
            .values(revoked_at=sa.func.now())
            .returning(col(ApiKey.id))
        )
        return sorted(cast(list[int], revoked.scalars().all()))  # primary keys: never None
