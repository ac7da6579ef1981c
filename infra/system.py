"""Host plumbing for the local stack: running commands (as the unprivileged service user when
we are root), installing missing Debian packages, file locks and atomic file writes."""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from services.core.os_user import ServiceUser

log = logging.getLogger("infra.stack")


class StackError(RuntimeError):
    """A step of the stack failed; the message is one line naming what failed and where."""


def shown(path: Path) -> str:
    """A path as the user typed it: relative to the working directory when it is inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def run(
    argv: Sequence[str | Path],
    *,
    failure: str,
    user: ServiceUser | None = None,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    stdin: str | None = None,
    log_file: Path | None = None,
) -> None:
    """Run a command; raise StackError(failure ...) naming its error or log when it fails.

    With log_file, stdout and stderr are appended to it (and the error points at it): commands
    that leave a daemon behind must not hold a pipe we wait on.
    """
    command = [*(user.prefix if user else ()), *map(str, argv)]
    if log_file is None:
        result = subprocess.run(
            command, cwd=cwd, env=env, input=stdin, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            lines = (result.stderr or result.stdout).strip().splitlines()
            detail = lines[-1] if lines else f"exit status {result.returncode}"
            raise StackError(f"{failure}: {detail}")
        return
    # Logs may quote settings and data: readable by their owner only.
    with os.fdopen(os.open(log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "a") as sink:
        os.fchmod(sink.fileno(), 0o600)
        result = subprocess.run(
            command,
            cwd=cwd,
            env=env,
            input=stdin,
            stdout=sink,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
        )
    if result.returncode != 0:
        raise StackError(f"{failure}; see {shown(log_file)}")


def probe(
    argv: Sequence[str | Path],
    *,
    user: ServiceUser | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command whose exit status is the answer (127: it could not be run)."""
    command = [*(user.prefix if user else ()), *map(str, argv)]
    try:
        return subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    except OSError as error:
        return subprocess.CompletedProcess(command, 127, "", str(error))


# Wait for a concurrent apt or dpkg (unattended-upgrades) instead of failing at once.
LOCK_WAIT = ("-o", "DPkg::Lock::Timeout=300")


class Apt:
    """Installs missing Debian packages when root (one `apt-get update` per process), and
    otherwise says exactly what to install."""

    def __init__(self) -> None:
        self._updated = False

    @staticmethod
    def missing(packages: Sequence[str]) -> list[str]:
        absent = []
        for package in packages:
            result = probe(["dpkg-query", "-W", "-f=${Status}", package])
            if result.returncode != 0 or not result.stdout.endswith(" installed"):
                absent.append(package)
        return absent

    @staticmethod
    def can_install() -> bool:
        return os.geteuid() == 0 and shutil.which("apt-get") is not None

    def update(self) -> None:
        log.info("apt-get update ...")
        run(["apt-get", "update"], failure="apt-get update failed", env=self._env())
        self._updated = True

    def install(self, packages: Sequence[str], what: str) -> None:
        missing = self.missing(packages)
        if not missing:
            return
        if not self.can_install():
            raise StackError(
                f"missing {what}; install with: sudo apt-get install -y {' '.join(missing)}"
            )
        if not self._updated:
            self.update()
        log.info("installing Debian packages for %s: %s", what, " ".join(missing))
        # A package's own daemon (Debian starts Prometheus on :9090) is not the stack's.
        guard = Path("/usr/sbin/policy-rc.d")
        placed = not guard.exists()
        if placed:
            guard.write_text("#!/bin/sh\nexit 101\n")
            guard.chmod(0o755)
        try:
            run(
                ["apt-get", "install", "-y", "--no-install-recommends", *LOCK_WAIT, *missing],
                failure=f"apt-get install {' '.join(missing)} failed",
                env=self._env(),
            )
        finally:
            if placed:
                guard.unlink(missing_ok=True)

    @staticmethod
    def _env() -> dict[str, str]:
        return {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on path (created if missing) for the duration of the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_file(path: Path, text: str, mode: int, owner: ServiceUser | None = None) -> None:
    """Replace path atomically with text, with the given mode (and owner, when root)."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(temp, mode)
        if owner is not None:
            owner.own(Path(temp))
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
