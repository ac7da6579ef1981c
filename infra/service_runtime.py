"""Who the project's services run as, and with which Python. Started by root, the stack does
not run them as root: the bot, the admin API and the stand-in run as the unprivileged system
user `botstack` (created when missing), the backup service as the user that runs PostgreSQL
(it runs PostgreSQL's programs on the clusters it restores). Root's Python is often
unreachable for other users (pyenv under /root), so they get a virtual environment of the
system Python in the state directory, installed from the lock file, without dev tools."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from infra.stack_state import Layout
from infra.system import StackError, run
from services.core.os_user import ServiceUser

APP_USER = "botstack"
REPO_ROOT = Path(__file__).resolve().parent.parent
SYSTEM_PYTHON = Path("/usr/bin/python3")


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int
    # Its HOME: root's is unreadable to it, and libraries look there (asyncpg for TLS files).
    home: str


@dataclass(frozen=True)
class Runtime:
    python: Path
    # None: run as the current user (the stack was not started by root).
    app_user: Account | None
    postgres_user: Account | None


def prepare_runtime(paths: Layout, postgres_user: ServiceUser) -> Runtime:
    if os.geteuid() != 0:
        return Runtime(Path(sys.executable), None, None)
    app_user = _ensure_app_user()
    postgres = _account(pwd.getpwnam(postgres_user.name))
    python = Path(sys.executable)
    if not _reachable_by_others(python):
        python = _service_venv(paths)
    for account in (app_user, postgres):
        _check_can_run(python, account)
    return Runtime(python, app_user, postgres)


def _ensure_app_user() -> Account:
    try:
        entry = pwd.getpwnam(APP_USER)
    except KeyError:
        run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                APP_USER,
            ],
            failure=f"could not create the unprivileged user {APP_USER!r}",
        )
        entry = pwd.getpwnam(APP_USER)
    return _account(entry)


def _account(entry: pwd.struct_passwd) -> Account:
    return Account(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir)


def _reachable_by_others(python: Path) -> bool:
    """Every directory on the way to the interpreter is searchable by anyone."""
    real = python.resolve()
    searchable = all(parent.stat().st_mode & 0o001 for parent in real.parents)
    return searchable and real.stat().st_mode & 0o005 == 0o005


def _service_venv(paths: Layout) -> Path:
    uv = os.environ.get("UV") or shutil.which("uv")
    if uv is None or not SYSTEM_PYTHON.exists():
        raise StackError(
            f"the services run as {APP_USER!r}, which cannot reach {sys.executable}; building "
            f"their environment needs uv and {SYSTEM_PYTHON}"
        )
    venv = paths.root / "venv"
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env["UV_PROJECT_ENVIRONMENT"] = str(venv)
    run(
        # Compiled now: the services cannot write bytecode into a directory root owns.
        [
            uv,
            "sync",
            "--locked",
            "--no-dev",
            "--python",
            SYSTEM_PYTHON,
            "--link-mode",
            "copy",
            "--compile-bytecode",
        ],
        failure="could not install the services' environment (uv sync into the state directory)",
        cwd=REPO_ROOT,
        env=env,
        log_file=paths.logs / "service-venv.log",
    )
    return venv / "bin" / "python"


def _check_can_run(python: Path, account: Account) -> None:
    result = subprocess.run(
        [python, "-c", "import services.core.settings"],
        cwd=REPO_ROOT,
        env={**os.environ, "HOME": account.home},
        user=account.uid,
        group=account.gid,
        extra_groups=[],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise StackError(
            f"the services run as the unprivileged user {account.name!r}, which cannot run "
            f"them from {REPO_ROOT} ({reason}); make the checkout readable by other users"
        )
