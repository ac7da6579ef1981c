"""The README keeps up with the code (every Makefile target is named in it), and the targets
that act on a running stack say so when there is none."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from tests.conftest import REPO


def test_every_makefile_target_is_in_the_readme() -> None:
    makefile = (REPO / "Makefile").read_text()
    targets = re.findall(r"^([a-z][a-z-]*):.*## ", makefile, re.MULTILINE)
    assert len(targets) > 10
    readme = (REPO / "README.md").read_text()
    missing = [target for target in targets if f"make {target}" not in readme]
    assert missing == [], f"Makefile targets missing from README.md: {missing}"


def test_targets_on_a_stack_that_is_not_there_say_to_start_it(tmp_path: Path) -> None:
    uv = os.environ.get("UV") or shutil.which("uv") or "uv"
    for target in (["admin-key", "ROLE=admin", "NAME=ops"], ["backup"], ["migrate"]):
        result = subprocess.run(
            ["make", "-s", *target, f"STATE_DIR={tmp_path / 'none'}", f"UV={uv}"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode != 0, target
        assert "start the stack first (make up)" in result.stderr, (target, result.stderr)
        assert "No such file" not in result.stderr
