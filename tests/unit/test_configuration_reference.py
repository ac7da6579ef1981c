"""docs/configuration.md is generated from the settings classes and lists every setting."""

from __future__ import annotations

from infra.docs import REFERENCE, render, settings_classes
from services.core.entry import variables

STALE = "docs/configuration.md is stale: run `uv run python -m infra.docs`"


def test_every_setting_is_in_the_reference() -> None:
    reference = REFERENCE.read_text()
    classes = settings_classes()
    assert len(classes) >= 10
    missing = [
        f"{cls.__name__}: {variable}"
        for cls in classes
        for variable, _ in variables(cls)
        if f"| `{variable}` |" not in reference
    ]
    assert missing == [], f"{STALE}; missing: {missing}"


def test_the_reference_is_what_the_classes_generate() -> None:
    assert REFERENCE.read_text() == render(), STALE
