"""The OpenAPI document describes every route as it behaves: key-protected routes declare the
bearer scheme and their auth errors, and every error is documented as problem+json."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

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
