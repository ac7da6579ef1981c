"""Telegram's response envelope: `ok`, `result` or `error_code`, `description`, `parameters`."""

from __future__ import annotations

from typing import Any

from aiogram.types import TelegramObject
from aiohttp import web


class ApiError(Exception):
    """A Bot API error answered to the caller exactly as Telegram would."""

    def __init__(self, status: int, description: str, *, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after


def bad_request(detail: str) -> ApiError:
    return ApiError(400, f"Bad Request: {detail}")


def to_json(value: Any) -> Any:
    """A result as Telegram puts it on the wire: aiogram's own serialization of its types."""
    if isinstance(value, TelegramObject):
        return value.model_dump(mode="json", by_alias=True, exclude_none=True)
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    return value


def ok_response(result: Any) -> web.Response:
    return web.json_response({"ok": True, "result": to_json(result)})


def error_body(error: ApiError) -> dict[str, Any]:
    body: dict[str, Any] = {
        "ok": False,
        "error_code": error.status,
        "description": error.description,
    }
    if error.retry_after is not None:
        body["parameters"] = {"retry_after": error.retry_after}
    return body


def error_response(error: ApiError) -> web.Response:
    return web.json_response(error_body(error), status=error.status)
