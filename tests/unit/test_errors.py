"""Translation of validation and driver errors into the core's small set."""

from __future__ import annotations

import pytest
from sqlalchemy import exc as sa_exc

from services.core.db.metrics import operation_of
from services.core.errors import (
    DatabaseUnavailable,
    InvalidInput,
    translate,
)
from services.core.repositories.base import checked
from services.core.schema import User


def test_validation_error_names_the_field() -> None:
    with pytest.raises(Exception) as caught:
        checked(User, telegram_id=1, language_code="x" * 17)
    error = translate(caught.value)
    assert isinstance(error, InvalidInput)
    assert error.field == "language_code"


@pytest.mark.parametrize(
    "raised",
    [
        ConnectionRefusedError(111, "Connection refused"),
        TimeoutError(),
        sa_exc.TimeoutError("QueuePool limit reached"),
    ],
)
def test_unreachable_database_is_unavailable(raised: BaseException) -> None:
    assert isinstance(translate(raised), DatabaseUnavailable)


def test_application_bugs_are_not_translated() -> None:
    assert translate(KeyError("oops")) is None


@pytest.mark.parametrize(
    ("statement", "operation"),
    [
        ("SELECT 1", "select"),
        ("  insert into users", "insert"),
        ("UPDATE users SET x = 1", "update"),
        ("DELETE FROM users", "delete"),
        ("WITH x AS (SELECT 1) SELECT * FROM x", "other"),
        ("BEGIN", "other"),
    ],
)
def test_operation_label(statement: str, operation: str) -> None:
    assert operation_of(statement) == operation
