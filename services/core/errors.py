"""The small set of errors services act on. No driver error leaks past the core: every
database or validation failure is translated into one of these by `translate`."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import asyncpg
import pydantic
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_dbapi

log = logging.getLogger(__name__)


class CoreError(Exception):
    """Base of every error the core raises."""

    kind = "error"


class NotFound(CoreError):
    kind = "not_found"

    def __init__(self, entity: str, key: object) -> None:
        super().__init__(f"{entity} {key!r} not found")
        self.entity = entity
        self.key = key


class Conflict(CoreError):
    """A unique, exclusion or foreign-key rule refused the change (e.g. the slot is taken)."""

    kind = "conflict"

    def __init__(
        self, message: str, constraint: str | None = None, field: str | None = None
    ) -> None:
        super().__init__(message)
        self.constraint = constraint
        self.field = field  # the column of a single-column unique constraint, when known


class InvalidInput(CoreError):
    """The input breaks a rule of the schema; `field` names the offending field when known."""

    kind = "invalid_input"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field


class DatabaseUnavailable(CoreError):
    """The database cannot be reached or did not answer in time; retrying later may work."""

    kind = "unavailable"


class DatabaseError(CoreError):
    """Any other database failure: a bug (bad SQL, missing grant), not the caller's input."""

    kind = "database_error"


@dataclass(frozen=True)
class _Rule:
    error: type[CoreError]
    message: str


# SQLSTATEs worth telling apart (https://www.postgresql.org/docs/current/errcodes-appendix.html).
_BY_SQLSTATE = {
    "23505": _Rule(Conflict, "already exists"),
    "23P01": _Rule(Conflict, "overlaps an existing row"),
    "23503": _Rule(Conflict, "refers to a missing row or is still referenced"),
    "23514": _Rule(InvalidInput, "violates a check rule"),
    "23502": _Rule(InvalidInput, "is required"),
    "22001": _Rule(InvalidInput, "is too long"),
    "22003": _Rule(InvalidInput, "is out of range"),
    "22P02": _Rule(InvalidInput, "has an invalid format"),
    "22007": _Rule(InvalidInput, "has an invalid date or time format"),
    "22008": _Rule(InvalidInput, "is an invalid date or time"),
    "57014": _Rule(DatabaseUnavailable, "statement timed out"),
    "53300": _Rule(DatabaseUnavailable, "too many connections"),
}
# Classes: 08 connection exception, 57P admin shutdown / cannot connect now, 53 resources.
_UNAVAILABLE_CLASSES = ("08", "57P", "53")
_PGBOUNCER_UNAVAILABLE = ("pgbouncer cannot connect", "no more connections", "query_wait_timeout")


def _field_from_constraint(
    table: str | None, constraint: str | None, kind: str = "ck"
) -> str | None:
    """ck_users_credits_nonnegative -> credits, uq_products_code -> code (the naming
    convention in schema/base.py)."""
    if not table or not constraint:
        return None
    prefix = f"{kind}_{table}_"
    if not constraint.startswith(prefix):
        return None
    rest = constraint[len(prefix) :]
    return (rest.rsplit("_", 1)[0] if kind == "ck" else rest) or None


def translate(error: BaseException) -> CoreError | None:
    """The CoreError for a database, pool or validation error; None for anything else (an
    application bug, cancellation), which the caller re-raises as it is."""
    if isinstance(error, CoreError):
        return error
    if isinstance(error, pydantic.ValidationError):
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or None
        return InvalidInput(first["msg"], field)
    if isinstance(error, sa_exc.TimeoutError):  # no pooled connection became free in time
        return DatabaseUnavailable("timed out waiting for a database connection")
    if isinstance(error, (asyncio.TimeoutError, TimeoutError)):
        return DatabaseUnavailable("the database did not answer in time")
    if isinstance(error, OSError):  # connection refused, reset, unreachable
        return DatabaseUnavailable(f"cannot reach the database: {error.strerror or error}")
    if isinstance(error, sa_exc.DBAPIError):  # through the session
        if error.connection_invalidated:
            return DatabaseUnavailable("the database connection was lost")
        driver = error.orig.__cause__ if error.orig is not None else None
        sqlstate = getattr(error.orig, "sqlstate", None)
        interface_error = isinstance(error, sa_exc.InterfaceError)
    elif isinstance(error, AsyncAdapt_asyncpg_dbapi.Error):  # from the adapter, unwrapped
        driver = error.__cause__
        sqlstate = error.sqlstate
        interface_error = isinstance(driver, asyncpg.InterfaceError)
    elif isinstance(error, (asyncpg.PostgresError, asyncpg.InterfaceError)):  # hot path
        driver = error
        sqlstate = getattr(error, "sqlstate", None)
        interface_error = isinstance(error, asyncpg.InterfaceError)
    else:
        return None
    return _from_driver(driver, sqlstate, interface_error, str(driver or error))


def _from_driver(
    driver: BaseException | None, sqlstate: str | None, interface_error: bool, text: str
) -> CoreError:
    if sqlstate in _BY_SQLSTATE:
        rule = _BY_SQLSTATE[sqlstate]
        constraint = getattr(driver, "constraint_name", None)
        if rule.error is Conflict:
            field = _field_from_constraint(getattr(driver, "table_name", None), constraint, "uq")
            return Conflict(f"{constraint or 'row'} {rule.message}", constraint, field)
        if rule.error is InvalidInput:
            field = getattr(driver, "column_name", None) or _field_from_constraint(
                getattr(driver, "table_name", None), constraint
            )
            return InvalidInput(
                f"{rule.message} ({constraint})" if constraint else rule.message, field
            )
        return DatabaseUnavailable(rule.message)
    if (sqlstate and sqlstate.startswith(_UNAVAILABLE_CLASSES)) or any(
        marker in text for marker in _PGBOUNCER_UNAVAILABLE
    ):
        return DatabaseUnavailable(f"the database is unavailable ({sqlstate or 'no sqlstate'})")
    if sqlstate and sqlstate.startswith("22"):
        # Data exceptions, including those the driver raises before the query reaches the
        # server (e.g. an int out of the 64-bit range). The driver's text quotes the value
        # and the query's internals, so it stays in the log.
        log.info("invalid input refused by the database: %s", text.splitlines()[0])
        return InvalidInput("a value is out of range or not of the expected type")
    if interface_error or isinstance(driver, (OSError, asyncio.TimeoutError, ConnectionError)):
        return DatabaseUnavailable("the database connection failed")
    return DatabaseError(f"database error ({sqlstate or type(driver).__name__})")
