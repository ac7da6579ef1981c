"""Dependencies of the routers, as `Annotated` aliases: the app's database and settings, the
authenticated principal, and role requirements."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.core.db import Database
from services.core.schema import Role

from ..auth import Principal, at_least, authenticate
from ..problems import ProblemError
from ..ratelimit import RateLimiter
from ..schemas import ID_MAX
from ..settings import AdminApiSettings

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer <key>`")


def _database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


def _settings(request: Request) -> AdminApiSettings:
    settings: AdminApiSettings = request.app.state.settings
    return settings


def _limiter(request: Request) -> RateLimiter:
    limiter: RateLimiter = request.app.state.limiter
    return limiter


def _client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


DatabaseDep = Annotated[Database, Depends(_database)]
SettingsDep = Annotated[AdminApiSettings, Depends(_settings)]

_UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}


async def _principal(
    request: Request,
    database: DatabaseDep,
    limiter: Annotated[RateLimiter, Depends(_limiter)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    failed_auth: RateLimiter = request.app.state.failed_auth
    address = _client_address(request)
    # Checked before the key is looked up: a client guessing keys costs no database query.
    wait = failed_auth.peek(address)
    if wait:
        raise ProblemError(
            429,
            "too many failed API key attempts from this address",
            headers={"Retry-After": RateLimiter.retry_after(wait)},
        )
    if credentials is None or not credentials.credentials:
        failed_auth.acquire(address)
        raise ProblemError(
            401, "missing API key: send Authorization: Bearer <key>", headers=_UNAUTHORIZED
        )
    async with database.unit_of_work() as uow:
        principal = await authenticate(uow, credentials.credentials)
    if principal is None:
        failed_auth.acquire(address)
        raise ProblemError(401, "unknown or revoked API key", headers=_UNAUTHORIZED)
    wait = limiter.acquire(principal.key_id)
    if wait:
        raise ProblemError(
            429,
            "rate limit of this API key exceeded",
            headers={"Retry-After": RateLimiter.retry_after(wait)},
        )
    return principal


def _require(role: Role) -> Callable[[Principal], Awaitable[Principal]]:
    async def check(principal: Annotated[Principal, Depends(_principal)]) -> Principal:
        if not at_least(principal.role, role):
            raise ProblemError(
                403, f"this action requires the {role} role; the API key has {principal.role}"
            )
        return principal

    return check


Viewer = Annotated[Principal, Depends(_require(Role.VIEWER))]
Operator = Annotated[Principal, Depends(_require(Role.OPERATOR))]
Admin = Annotated[Principal, Depends(_require(Role.ADMIN))]


def _limit(
    settings: SettingsDep,
    limit: Annotated[
        int, Query(ge=1, le=1000, description="Rows per page, at most ADMIN_API_MAX_PAGE_SIZE")
    ] = 50,
) -> int:
    return min(limit, settings.max_page_size)


Limit = Annotated[int, Depends(_limit)]


# A row id in a path: out of range is refused (422) by validation, not by the database.
Id = Annotated[int, Path(ge=1, le=ID_MAX)]
# The same for ids given as filters.
IdFilter = Annotated[int | None, Query(ge=1, le=ID_MAX)]
