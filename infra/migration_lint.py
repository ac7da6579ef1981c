"""python -m infra.migration_lint: render each migration's SQL (Alembic's offline mode, no
database) into a file of its own and lint them with squawk, as `make lint` does.

Each revision becomes `<revision>.sql` (the upgrade from its parent, with env.py's timeouts
and lock), so squawk's configuration (.squawk.toml) can name the ones that are history."""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tempfile
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

REPO = Path(__file__).resolve().parents[1]
POSTGRES_VERSION = "15.0"  # production's, so squawk judges what version 15 locks


def render(directory: Path) -> list[Path]:
    """One .sql file per revision, base first."""
    script = ScriptDirectory.from_config(Config(REPO / "alembic.ini"))
    files = []
    for revision in reversed(list(script.walk_revisions())):
        buffer = io.StringIO()
        config = Config(REPO / "alembic.ini", output_buffer=buffer)
        parent = revision.down_revision
        assert parent is None or isinstance(parent, str), "no merge revisions"
        command.upgrade(
            config, f"{parent}:{revision.revision}" if parent else revision.revision, sql=True
        )
        path = directory / f"{revision.revision}.sql"
        path.write_text(buffer.getvalue())
        files.append(path)
    return files


def squawk_command(files: list[Path]) -> list[str]:
    return [
        str(Path(sys.executable).parent / "squawk"),
        f"--config={REPO / '.squawk.toml'}",
        f"--pg-version={POSTGRES_VERSION}",
        "--no-error-on-unmatched-pattern",  # the history alone is all excluded
        *(str(path.resolve()) for path in files),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.migration_lint", description=__doc__)
    parser.add_argument("--keep", type=Path, help="write the SQL files here and keep them")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        directory = args.keep or Path(scratch)
        directory.mkdir(parents=True, exist_ok=True)
        return subprocess.run(squawk_command(render(directory)), check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
