"""Bot API methods as aiogram models them, and validation of raw call parameters against them.

aiogram sends every call as multipart/form-data: strings as they are, everything else
(numbers, booleans, objects, lists) JSON-encoded, files as extra parts referenced by
`attach://<name>`. Query strings and form bodies carry only strings too, so each string is
decoded the way the method's field needs it: JSON when the field takes a non-string value
("123" for chat_id, a JSON object for reply_markup), verbatim when it takes a string.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cache
from typing import Any

import aiogram.methods
from aiogram.methods import TelegramMethod
from aiogram.types import TelegramObject
from pydantic import ConfigDict, TypeAdapter, ValidationError

from .envelope import ApiError, bad_request

MethodModel = type[TelegramMethod[Any]]


@cache
def methods() -> dict[str, MethodModel]:
    """Every Bot API method aiogram knows, by lower-cased name (Telegram ignores case)."""
    registry: dict[str, MethodModel] = {}
    for name in aiogram.methods.__all__:
        candidate = getattr(aiogram.methods, name)
        if (
            isinstance(candidate, type)
            and issubclass(candidate, TelegramMethod)
            and isinstance(candidate.__dict__.get("__api_method__"), str)
        ):
            registry[candidate.__api_method__.lower()] = candidate
    return registry


def lookup(name: str) -> MethodModel:
    model = methods().get(name.lower())
    if model is None:
        raise ApiError(404, "Not Found: method not found")
    return model


@cache
def _field_adapter(model: MethodModel, field: str) -> TypeAdapter[Any]:
    annotation = model.model_fields[field].annotation
    return TypeAdapter(annotation, config=ConfigDict(arbitrary_types_allowed=True))


def _field_names(model: MethodModel) -> dict[str, str]:
    """Wire name (alias if any) to field name."""
    return {(info.alias or name): name for name, info in model.model_fields.items()}


def _decode(model: MethodModel, field: str, raw: Any) -> Any:
    if not isinstance(raw, str):
        return raw
    try:
        decoded = json.loads(raw)
    except ValueError:
        return raw
    if isinstance(decoded, str):
        return raw  # aiogram sends strings verbatim, so '"x"' means the text "x" with quotes
    try:
        _field_adapter(model, field).validate_python(decoded)
    except ValidationError:
        return raw  # the field wants a string: "123" as text stays "123"
    return decoded


def _describe(model: MethodModel, error: ValidationError) -> str:
    first = error.errors()[0]
    field = str(first["loc"][0]) if first["loc"] else "parameters"
    if first["type"] == "missing":
        if field == "text":
            return "message text is empty"
        return f"parameter {field} is required"
    message = first["msg"]
    return f"invalid parameter {field}: {message}"


def validate(
    model: MethodModel, raw: dict[str, Any], attachments: frozenset[str] = frozenset()
) -> tuple[TelegramMethod[Any], dict[str, Any]]:
    """The validated method model and its decoded parameters (JSON values, for the call log).

    `attachments` names the uploaded files: aiogram refers to them as attach://<name>; a file
    uploaded under a parameter's own name (curl -F photo=@x.jpg) stands for that parameter.
    Raises ApiError 400 for an unknown, missing or invalid parameter.
    """
    names = _field_names(model)
    params: dict[str, Any] = {}
    for name in attachments:
        if name in names:
            params[name] = f"attach://{name}"
    for key, value in raw.items():
        field = names.get(key)
        if field is None:
            raise bad_request(f"unknown parameter {key}")
        params[key] = _decode(model, field, value)
    try:
        method = model.model_validate(params)
    except ValidationError as error:
        raise bad_request(_describe(model, error)) from error
    for field in model.model_fields:
        unknown = _unknown_nested_key(getattr(method, field))
        if unknown:
            raise bad_request(f"invalid parameter {field}: unknown field {unknown}")
    return method, params


def _unknown_nested_key(value: Any) -> str | None:
    """aiogram's types accept extra keys, Telegram's parser does not: {"inline_keybord": ..}
    would otherwise validate as an empty ReplyKeyboardRemove."""
    if isinstance(value, TelegramObject):
        if value.model_extra:
            return next(iter(value.model_extra))
        return _first_unknown(getattr(value, name) for name in type(value).model_fields)
    if isinstance(value, list):
        return _first_unknown(value)
    return None


def _first_unknown(values: Iterable[Any]) -> str | None:
    for item in values:
        unknown = _unknown_nested_key(item)
        if unknown:
            return unknown
    return None
