"""Feature flags and runtime settings: rows keyed by name, read by the services (flags.py,
schedule.py) and changed by admins."""

from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col

from ..schema import FeatureFlag, RuntimeSetting
from .base import Repository

Keyed = TypeVar("Keyed", FeatureFlag, RuntimeSetting)


class ConfigRepository(Repository):
    async def all(self, model: type[Keyed]) -> list[Keyed]:
        """Every flag or every setting, by key."""
        result = await self.session.execute(sa.select(model).order_by(col(model.key)))
        return list(result.scalars())

    async def put(
        self, model: type[Keyed], key: str, values: dict[str, Any]
    ) -> tuple[Keyed, dict[str, list[Any]]]:
        """Creates or updates the row with this key; the row as it is now, and
        {field: [old, new]} for what changed. A put that changes nothing writes nothing, so
        updated_at keeps the time of the last real change."""
        # Locked: of two concurrent identical puts, the second sees the first's row.
        previous = await self.session.get(model, key, with_for_update=True)
        changed = {
            name: [None if previous is None else getattr(previous, name), value]
            for name, value in values.items()
            if previous is None or getattr(previous, name) != value
        }
        if previous is not None and not changed:
            return previous, changed
        written = values | {"updated_at": sa.func.now()}
        row = (
            await self.session.execute(
                insert(model)
                .values(key=key, **written)
                .on_conflict_do_update(index_elements=[col(model.key)], set_=written)
                .returning(model)
                # An instance already loaded in the session (previous) is refreshed too.
                .execution_options(populate_existing=True)
            )
        ).scalar_one()
        return row, changed
