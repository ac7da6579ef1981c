"""docs/configuration.md is generated from the settings classes and lists every setting."""

from __future__ import annotations

import subprocess
import sys

from infra.docs import REFERENCE, settings_classes
from services.core.entry import variables
from tests.conftest import REPO


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
    assert missing == [], (
        f"missing from docs/configuration.md (run python -m infra.docs): {missing}"
    )


def test_the_reference_is_what_the_classes_generate() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "infra.docs", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
