"""Feature flags and runtime settings: everyone reads them, admins change them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import ValidationError

from services.core.db import UnitOfWork
from services.core.errors import InvalidInput
from services.core.flags import KNOWN_FLAGS
from services.core.repositories.config import Keyed
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
        return await uow.config.all(FeatureFlag)


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
        return await uow.config.all(RuntimeSetting)


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
    row, changed = await uow.config.put(model, key, values)
    if changed:
        action, entity = AUDITED[model]
        audit.record(uow, who, action, entity, key, changed)
    return row
