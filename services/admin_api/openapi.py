"""The OpenAPI document, adjusted so it says what the API really sends: errors are
problem+json (FastAPI would document 422 as its own JSON validation body)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from .problems import PROBLEM_JSON

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
# Every authenticated route can answer these, whatever its own errors are.
AUTH_ERRORS = {"401", "403", "429", "503"}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM_JSON: {"schema": PROBLEM_REF}}}


def _fix_operation(operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    for status, response in responses.items():
        if int(status) >= 400:
            responses[status] = _problem(response.get("description", "Error"))
    if "422" in responses:
        responses["422"] = _problem("The request is invalid; `field` names the offending field")
    if operation.get("security"):
        for status, description in (
            ("401", "No API key, or an unknown or revoked one"),
            ("403", "The API key's role may not do this"),
            ("429", "Rate limit of the API key exceeded; see Retry-After"),
            ("503", "The database is unavailable"),
        ):
            responses.setdefault(status, _problem(description))


def install(app: FastAPI, problem_schema: dict[str, Any]) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            for path in document["paths"].values():
                for operation in path.values():
                    _fix_operation(operation)
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            schemas.pop("HTTPValidationError", None)
            schemas.pop("ValidationError", None)
            schemas["Problem"] = problem_schema
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
