"""The OpenAPI document, adjusted so it says what the API really sends: errors are
problem+json (FastAPI would document 422 as its own JSON validation body), and every schema
lives in components, where `#/components/schemas/...` references resolve."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic.json_schema import models_json_schema

from .problems import PROBLEM_JSON, Problem

COMPONENT_REF = "#/components/schemas/{model}"
PROBLEM_REF = {"$ref": COMPONENT_REF.format(model="Problem")}
# What every operation can answer besides its own responses, by what it takes. The body
# limit (BodyLimitMiddleware) runs before routing, so it applies to any request; FastAPI
# refuses a JSON body it cannot decode (not UTF-8) with 400 before validation; the key check
# (deps._principal) and the database stand behind every authenticated operation.
ANY_OPERATION = {"413": "The request body is larger than ADMIN_API_MAX_BODY_BYTES"}
WITH_BODY = {"400": "The body cannot be read as JSON (it is not UTF-8 text)"}
AUTHENTICATED = {
    "401": "No API key, or an unknown or revoked one",
    "403": "The API key's role may not do this",
    "429": "Too many requests from this API key, or failed key checks from this address",
    "503": "The database is unavailable",
}
# Headers that always come with a status (problems.py, deps.py).
RETRY_AFTER = {
    "description": "Seconds to wait before retrying",
    "required": True,
    "schema": {"type": "integer", "minimum": 0},
}
HEADERS: dict[str, dict[str, Any]] = {
    "401": {"WWW-Authenticate": {"required": True, "schema": {"type": "string"}}},
    "429": {"Retry-After": RETRY_AFTER},
    "503": {"Retry-After": RETRY_AFTER},
}


def _problem(status: str, description: str) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": PROBLEM_REF}},
    }
    if status in HEADERS:
        response["headers"] = HEADERS[status]
    return response


def _fix_operation(operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    for status, response in responses.items():
        if int(status) >= 400:
            responses[status] = _problem(status, response.get("description", "Error"))
    if "422" in responses:
        responses["422"] = _problem(
            "422", "The request is invalid; `field` names the offending field"
        )
    common = ANY_OPERATION | (WITH_BODY if "requestBody" in operation else {})
    if operation.get("security"):
        common |= AUTHENTICATED
    for status, description in common.items():
        responses.setdefault(status, _problem(status, description))


def _problem_schemas() -> dict[str, Any]:
    """Problem and the models it nests, each its own component (pydantic's own schema of
    Problem nests them under `$defs`, which a reference from the document cannot reach)."""
    _, schema = models_json_schema([(Problem, "serialization")], ref_template=COMPONENT_REF)
    schemas: dict[str, Any] = schema["$defs"]
    return schemas


def install(app: FastAPI) -> None:
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
            schemas.update(_problem_schemas())
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
