"""Liveness, readiness (the database through PgBouncer) and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from ..problems import problem_responses
from .deps import DatabaseDep

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    status: str


@router.get("/health/live", response_model=Health)
async def live() -> Health:
    """The process answers; says nothing about the database."""
    return Health(status="ok")


@router.get("/health/ready", response_model=Health, responses=problem_responses(503))
async def ready(database: DatabaseDep) -> Health:
    """The database answers a query through PgBouncer (503 otherwise)."""
    await database.ping()
    return Health(status="ok")


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
)
async def metrics(database: DatabaseDep) -> Response:
    """Prometheus metrics: HTTP requests and latency, and the database layer's metrics."""
    return Response(generate_latest(database.metrics.registry), media_type=CONTENT_TYPE_LATEST)
