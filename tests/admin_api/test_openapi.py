"""The OpenAPI document describes every route as it behaves: it is a valid OpenAPI document
(every reference resolves), key-protected routes declare the bearer scheme and their auth
errors, and every error is documented as problem+json, including those the framework answers
before a route runs (a body that is not JSON, an oversized body)."""

from __future__ import annotations

import re
from typing import Any

import httpx
from fastapi import FastAPI
from openapi_spec_validator import validate

from .conftest import UNLIMITED

PROBLEM = "application/problem+json"
PUBLIC = {"/health/live", "/health/ready", "/metrics"}


def test_every_operation_documents_auth_success_and_problem_errors(app: FastAPI) -> None:
    document = app.openapi()
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            responses = operation["responses"]
            successes = [status for status in responses if status.startswith("2")]
            assert len(successes) == 1, where
            assert responses[successes[0]]["content"], where
            if path in PUBLIC:
                assert "security" not in operation, where
            else:
                assert operation["security"] == [{"HTTPBearer": []}], where
                assert {"401", "403", "429", "503"} <= set(responses), where
            for status, response in responses.items():
                if int(status) >= 400:
                    assert list(response["content"]) == ["application/problem+json"], where


async def test_docs_page_loads_its_assets_from_the_api_itself(client: httpx.AsyncClient) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200
    assert "cdn" not in page.text.lower() and "https://" not in page.text
    for asset in ("/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css"):
        assert asset in page.text
        loaded = await client.get(asset)
        assert loaded.status_code == 200 and len(loaded.content) > 10_000


async def test_the_served_document_is_valid_openapi(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    validate(document)  # raises on an unresolvable reference, e.g. pydantic's nested $defs
    assert "$defs" not in str(document)


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), re.sub(r"\{[^}]+\}", "1", path), operation)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    ]


async def test_a_body_that_is_not_json_is_a_documented_400(
    client: httpx.AsyncClient, admin: dict[str, str], app: FastAPI
) -> None:
    with_body = [entry for entry in _operations(app.openapi()) if "requestBody" in entry[2]]
    assert len(with_body) >= 8
    for method, path, operation in with_body:
        response = await client.request(
            method,
            path,
            content=b"\xff\xfe not text",
            headers=admin | {"Content-Type": "application/json"},
        )
        assert response.status_code == 400, (method, path, response.text)
        assert response.headers["content-type"] == PROBLEM
        assert "400" in operation["responses"], (method, path)


async def test_an_oversized_body_is_a_documented_413_on_every_operation(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    limit = UNLIMITED.max_body_bytes
    for method, path, operation in _operations(app.openapi()):
        response = await client.request(method, path, content=b"{" + b" " * limit + b"}")
        assert response.status_code == 413, (method, path)
        assert "413" in operation["responses"], (method, path)
