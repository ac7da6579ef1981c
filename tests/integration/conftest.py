"""Integration fixtures: the shared `database` (tests/conftest.py), through the real PgBouncer
in each mode the layer supports."""

from __future__ import annotations

import pytest

from tests.conftest import MODES, bouncer_dsn

__all__ = ["MODES", "bouncer_dsn"]  # imported from here by tests of other packages


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)
