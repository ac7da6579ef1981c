"""The core owns every statement: no module of services/ outside services/core talks to the
database library itself. A route or handler parses, authorizes, calls the core and renders; a
new query goes into a repository (services/core/repositories) or a maintenance module
(services/core/maintenance), where "what writes this table?" is one search."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ROOT / "services"
CORE = SERVICES / "core"
DATABASE_LIBRARIES = frozenset({"sqlalchemy", "sqlmodel", "asyncpg"})
# Modules allowed to import a database library anyway, each with the reason. Empty: keep it so.
EXEMPT: dict[str, str] = {}


def database_imports(source: str, filename: str) -> list[str]:
    """`line: module` for every import of a database library, wherever it is in the module
    (top level, inside a function, under TYPE_CHECKING), in either form of import."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [
            f"{node.lineno}: {name}" for name in names if name.split(".")[0] in DATABASE_LIBRARIES
        ]
    return found


def outside_core() -> list[Path]:
    return sorted(path for path in SERVICES.rglob("*.py") if not path.is_relative_to(CORE))


def test_no_service_outside_the_core_imports_a_database_library() -> None:
    modules = outside_core()
    assert len(modules) > 50, "the walk found too few modules: is SERVICES right?"
    offenders = {
        str(path.relative_to(ROOT)): imports
        for path in modules
        if str(path.relative_to(ROOT)) not in EXEMPT
        and (imports := database_imports(path.read_text(), str(path)))
    }
    assert not offenders, (
        "these modules import a database library; move their statements into services/core "
        f"(docs/development.md, 'Adding a query'): {offenders}"
    )


def test_every_exemption_names_a_module_that_still_needs_it() -> None:
    for module, reason in EXEMPT.items():
        assert reason, f"{module}: an exemption needs its reason"
        assert database_imports((ROOT / module).read_text(), module), (
            f"{module} no longer imports a database library: drop its exemption"
        )


@pytest.mark.parametrize(
    "source",
    [
        "import sqlalchemy as sa",
        "import os, asyncpg",
        "import sqlalchemy.dialects.postgresql",
        "from sqlmodel import col",
        "from sqlalchemy.ext.asyncio import AsyncSession",
        "def f():\n    import asyncpg\n",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from sqlmodel import Session\n",
    ],
)
def test_the_check_sees_every_form_of_import(source: str) -> None:
    assert database_imports(source, "<test>")


@pytest.mark.parametrize(
    "source",
    [
        "from services.core.db import Database",
        "import sqlalchemy_utils",  # another distribution, not the database layer's
        "from . import sqlalchemy",  # a sibling module of that name
        "text = 'import asyncpg'",
    ],
)
def test_the_check_leaves_other_imports_alone(source: str) -> None:
    assert not database_imports(source, "<test>")
