"""RFC 9457 problem details: every error leaves the API as application/problem+json, and
none carries a stack trace or SQL text (only messages written for the caller)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.core.errors import (
    Conflict,
    CoreError,
    DatabaseUnavailable,
    InvalidInput,
    NotFound,
)

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
# Seconds a client should wait before retrying while the database is unavailable.
UNAVAILABLE_RETRY_AFTER = 5


class FieldProblem(BaseModel):
    field: str
    detail: str


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    # The request field at fault (422), as a dotted path such as `body.delta`.
    field: str | None = None
    # Every field at fault (422 from validation), the first of which is `field`.
    errors: list[FieldProblem] | None = None


class ProblemError(Exception):
    """Raised by handlers and dependencies for an error response with a specific detail."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.field = field
        self.headers = headers or {}


def problem_response(
    status: int,
    detail: str | None = None,
    *,
    field: str | None = None,
    errors: list[FieldProblem] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = Problem(
        title=HTTPStatus(status).phrase, status=status, detail=detail, field=field, errors=errors
    )
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries documenting problem+json bodies for the given statuses."""
    return {
        status: {
            "model": Problem,
            "description": HTTPStatus(status).phrase,
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }


def _validation_field(error: dict[str, Any]) -> str:
    return ".".join(str(part) for part in error.get("loc", ()))


async def _on_problem(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ProblemError)
    return problem_response(error.status, error.detail, field=error.field, headers=error.headers)


async def _on_http(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    return problem_response(error.status_code, str(error.detail), headers=error.headers)


async def _on_validation(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    # Only pydantic's message per field: never the input value, which may be a secret.
    errors = [
        FieldProblem(field=_validation_field(item), detail=str(item.get("msg", "invalid")))
        for item in error.errors()
    ]
    detail = "; ".join(f"{item.field}: {item.detail}" for item in errors)
    return problem_response(422, detail, field=errors[0].field, errors=errors)


async def _on_core(request: Request, error: Exception) -> JSONResponse:
    if isinstance(error, NotFound):
        return problem_response(404, f"{error.entity} {error.key} not found")
    if isinstance(error, Conflict):
        if error.field:
            return problem_response(
                409, f"{error.field}: this value is already taken", field=f"body.{error.field}"
            )
        return problem_response(409, str(error))
    if isinstance(error, InvalidInput):
        field = f"body.{error.field}" if error.field else None
        return problem_response(422, str(error), field=field)
    if isinstance(error, DatabaseUnavailable):
        return problem_response(
            503,
            "the database is unavailable; try again later",
            headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER)},
        )
    log.error("database error", exc_info=error)
    return problem_response(500, "internal error")


async def _on_unexpected(request: Request, error: Exception) -> JSONResponse:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=error)
    return problem_response(500, "internal error")


def install(app: FastAPI) -> None:
    app.add_exception_handler(ProblemError, _on_problem)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(CoreError, _on_core)
    app.add_exception_handler(Exception, _on_unexpected)
