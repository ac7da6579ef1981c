"""The OS user that runs PostgreSQL's programs (the servers and the backup tools): PostgreSQL
refuses to run as root, so a root caller runs them as `postgres`. Used by the backup service
and by the local stack."""

from __future__ import annotations

import os
import pwd
import shutil
from dataclasses import dataclass
from pathlib import Path


class NoServiceUser(RuntimeError):
    """Running as root without the unprivileged `postgres` account."""


@dataclass(frozen=True)
class ServiceUser:
    name: str
    uid: int
    gid: int
    # Prepended to commands that must run as this user; empty when it is the current user.
    prefix: tuple[str, ...]

    @classmethod
    def detect(cls) -> ServiceUser:
        if os.geteuid() != 0:
            entry = pwd.getpwuid(os.geteuid())
            return cls(entry.pw_name, entry.pw_uid, entry.pw_gid, ())
        try:
            entry = pwd.getpwnam("postgres")
        except KeyError:
            raise NoServiceUser(
                "running as root needs the unprivileged OS user 'postgres' (created by the "
                "Debian package postgresql-15); create it or run as a normal user"
            ) from None
        runuser = shutil.which("runuser") or "/usr/sbin/runuser"
        return cls(entry.pw_name, entry.pw_uid, entry.pw_gid, (runuser, "-u", "postgres", "--"))

    def own(self, path: Path) -> None:
        if self.prefix:
            os.chown(path, self.uid, self.gid)

    def log_file(self, path: Path) -> Path:
        """path, created if missing so that this user's daemons can append to it."""
        if not path.exists():
            path.touch(0o600)  # only its owner (and root) reads a server's log
            self.own(path)
        return path
