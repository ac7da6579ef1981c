"""The settings the services read, found the way they find them: the environment first, then
the local stack's env file (<state dir>/env, written by `make up`), then secret files under
/run/secrets, then the defaults. The env file fills in only what the environment leaves unset."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

# Which values came from the env file, for `botstack config`.
FROM_STATE_FILE: set[str] = set()


def state_dir() -> Path:
    return Path(os.environ.get("BOTSTACK_STATE_DIR", os.environ.get("STATE_DIR", ".stack")))


def load_state_env(directory: Path) -> Path | None:
    """Copy <directory>/env's variables that the environment does not set into it."""
    path = directory / "env"
    try:
        text = path.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if "=" not in line or line.lstrip().startswith("#"):
            continue
        name, _, value = line.partition("=")
        name = name.strip()
        if name and name not in os.environ:
            parsed = shlex.split(value)
            os.environ[name] = parsed[0] if parsed else ""
            FROM_STATE_FILE.add(name)
    return path
