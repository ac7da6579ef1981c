"""The documentation stands on its own and keeps up with the code: a short README naming every
Makefile target, docs/ whose links all resolve inside the repository and point nowhere outside
it; and the targets that act on a running stack say so when there is none."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO


def test_every_makefile_target_is_in_the_readme() -> None:
    makefile = (REPO / "Makefile").read_text()
    targets = re.findall(r"^([a-z][a-z-]*):.*## ", makefile, re.MULTILINE)
    assert len(targets) > 10
    readme = (REPO / "README.md").read_text()
    missing = [target for target in targets if f"make {target}" not in readme]
    assert missing == [], f"Makefile targets missing from README.md: {missing}"


DOCS = REPO / "docs"
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def _documents() -> list[Path]:
    return [REPO / "README.md", *sorted(DOCS.rglob("*.md"))]


def test_the_readme_is_short_and_leads_to_docs() -> None:
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 300
    for command in ("make up", "make test", "make test-fast"):
        assert command in readme, command
    for page in ("operating", "configuration", "backups", "architecture", "development"):
        assert f"docs/{page}.md" in readme, page


def test_every_link_resolves_inside_the_repository() -> None:
    broken = []
    for document in _documents():
        for target in LINK.findall(document.read_text()):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            path = (document.parent / target).resolve()
            if not path.exists():
                broken.append(f"{document.relative_to(REPO)} -> {target}")
    assert broken == [], broken


def test_nothing_points_outside_the_repository() -> None:
    for document in _documents():
        text = document.read_text()
        for outside in ("../shared", "DESIGN.md", "closing note", "the issue"):
            assert outside not in text, f"{document.relative_to(REPO)} mentions {outside!r}"


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


@pytest.mark.slow  # installs uv and the locked environment from PyPI
def test_make_install_installs_uv_when_it_is_missing(tmp_path: Path) -> None:
    """A newcomer's machine: Python, make, no uv. `make install` (which `make up` and `make
    test` run first) gets uv from PyPI, then the locked environment."""
    python = tmp_path / "python"
    subprocess.run([sys.executable, "-m", "venv", str(python)], check=True, timeout=120)
    path = f"{python / 'bin'}:/usr/local/bin:/usr/bin:/bin"
    assert shutil.which("uv", path=path) is None
    result = subprocess.run(
        ["make", "install"],
        cwd=REPO,
        env={
            **{k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "UV")},
            "PATH": path,
            "UV_PROJECT_ENVIRONMENT": str(tmp_path / "env"),
        },
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "uv is missing: installing it from PyPI" in result.stdout
    assert (tmp_path / "env" / "bin" / "python").exists()
