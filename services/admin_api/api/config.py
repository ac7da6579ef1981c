"""Feature flags and runtime settings: everyone reads them, admins change them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, TypeVar

import sqlalchemy as sa
from fastapi import APIRouter, Path
from pydantic import ValidationError
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col

from services.core.db import UnitOfWork
from services.core.errors import InvalidInput
from services.core.flags import KNOWN_FLAGS
from services.core.schedule import HOURS_SETTING, BusinessHours
from services.core.schema import FeatureFlag, RuntimeSetting

from .. import audit
from ..auth import Principal
from ..problems import ProblemError, problem_responses
from ..schemas import ConfigKey, FlagChange, FlagOut, SettingChange, SettingOut
from .deps import Admin, DatabaseDep, Viewer

router = APIRouter(tags=["configuration"])
# Settings the services read, with the model a new value must fit. A name the services do
# not read is refused: a setting that does nothing would mislead the operator.
KNOWN_SETTINGS = {HOURS_SETTING: BusinessHours}


# Path keys whose known names the OpenAPI document lists.
FlagKey = Annotated[ConfigKey, Path(json_schema_extra={"enum": sorted(KNOWN_FLAGS)})]
SettingKey = Annotated[ConfigKey, Path(json_schema_extra={"enum": sorted(KNOWN_SETTINGS)})]


def _known(key: str, known: Mapping[str, object], what: str) -> None:
    if key not in known:
        raise ProblemError(
            422,
            f"path.key: no service reads the {what} {key!r}; known: {', '.join(sorted(known))}",
            field="path.key",
        )


@router.get("/flags", response_model=list[FlagOut])
async def list_flags(database: DatabaseDep, _: Viewer) -> list[FeatureFlag]:
    async with database.unit_of_work() as uow:
        query = sa.select(FeatureFlag).order_by(col(FeatureFlag.key))
        return list((await uow.session.execute(query)).scalars())


@router.put("/flags/{key}", response_model=FlagOut, responses=problem_responses(422))
async def set_flag(
    database: DatabaseDep, who: Admin, key: FlagKey, change: FlagChange
) -> FeatureFlag:
    """Creates or changes a flag the services read (see the README's list); a description
    left out keeps the current one."""
    _known(key, KNOWN_FLAGS, "feature flag")
    values: dict[str, Any] = {"enabled": change.enabled}
    if change.description is not None:
        values["description"] = change.description
    async with database.unit_of_work() as uow:
        return await _put(uow, who, FeatureFlag, key, values)


@router.get("/settings", response_model=list[SettingOut])
async def list_settings(database: DatabaseDep, _: Viewer) -> list[RuntimeSetting]:
    async with database.unit_of_work() as uow:
        query = sa.select(RuntimeSetting).order_by(col(RuntimeSetting.key))
        return list((await uow.session.execute(query)).scalars())


@router.put("/settings/{key}", response_model=SettingOut, responses=problem_responses(422))
async def set_setting(
    database: DatabaseDep, who: Admin, key: SettingKey, change: SettingChange
) -> RuntimeSetting:
    """Creates or changes a runtime setting the services read (`booking.hours`: open, close,
    slot_minutes, timezone); the value must fit it."""
    _known(key, KNOWN_SETTINGS, "runtime setting")
    try:
        KNOWN_SETTINGS[key].model_validate(change.value)
    except ValidationError as error:
        raise InvalidInput(error.errors()[0]["msg"], "value") from error
    values: dict[str, Any] = {"value": change.value}
    if change.description is not None:
        values["description"] = change.description
    async with database.unit_of_work() as uow:
        return await _put(uow, who, RuntimeSetting, key, values)


Keyed = TypeVar("Keyed", FeatureFlag, RuntimeSetting)
# The audit action and entity of each kind of keyed row.
AUDITED: dict[type[Any], tuple[str, str]] = {
    FeatureFlag: ("flag.set", "feature_flag"),
    RuntimeSetting: ("setting.set", "runtime_setting"),
}


async def _put(
    uow: UnitOfWork, who: Principal, model: type[Keyed], key: str, values: dict[str, Any]
) -> Keyed:
    """Creates or updates the row with this key, audited with {field: [old, new]} for what
    changed, and returns it as it is now. A PUT that changes nothing writes nothing: no
    audit entry, and updated_at keeps the time of the last real change."""
    # Locked: of two concurrent identical PUTs, the second sees the first's row.
    previous = await uow.session.get(model, key, with_for_update=True)
    changed = {
        name: [None if previous is None else getattr(previous, name), value]
        for name, value in values.items()
        if previous is None or getattr(previous, name) != value
    }
    if previous is not None and not changed:
        return previous
    written = values | {"updated_at": sa.func.now()}
    row = (
        await uow.session.execute(
            insert(model)
            .values(key=key, **written)
            .on_conflict_do_update(index_elements=[col(model.key)], set_=written)
            .returning(model)
            # An instance already loaded in the session (previous) is refreshed too.
            .execution_options(populate_existing=True)
        )
    ).scalar_one()
    action, entity = AUDITED[model]
    audit.record(uow, who, action, entity, key, changed)
    return row
