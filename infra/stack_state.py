"""What the local stack is made of: the state directory's layout, the ports, the PgBouncer
instances and the roles' credentials, and what `up` remembers for `down` and `status`."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings

from infra.binaries import PREPARED_STATEMENTS_SINCE, version_tuple
from infra.system import StackError, shown
from services.core.entry import describe
from services.core.settings import (
    BackupRoleSettings,
    DatabaseSettings,
    InsecureSettingsError,
    MigrationSettings,
    MonitorRoleSettings,
    PgBouncerSettings,
)

HOST = "127.0.0.1"
# Names go unquoted into pgbouncer.ini, the userlist, pg_hba.conf and DSNs.
NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


@dataclass(frozen=True)
class Ports:
    """PostgreSQL on base+2, the modern PgBouncer on base+1002, the legacy one on base+1003,
    the project's services from base+2000."""

    base: int

    @property
    def postgres(self) -> int:
        return self.base + 2

    @property
    def pgbouncer(self) -> int:
        return self.base + 1002

    @property
    def pgbouncer_legacy(self) -> int:
        return self.base + 1003

    def app(self, offset: int) -> int:
        """The project's own services (infra/app_services.py) from base+2000 on."""
        return self.base + 2000 + offset


class Layout:
    """Where everything lives in the state directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.pgdata = root / "pgdata"
        self.wal_archive = root / "wal-archive"
        self.run = root / "run"
        self.logs = root / "logs"
        self.pgbouncer = root / "pgbouncer"
        self.bin = root / "bin"
        self.endpoints = root / "endpoints.json"
        self.env = root / "env"
        self.state = root / "stack.json"
        self.lock = root / "stack.lock"
        self.postgres_log = self.logs / "postgresql.log"
        self.userlist = self.pgbouncer / "userlist.txt"

    def ini(self, bouncer: str) -> Path:
        return self.pgbouncer / f"{bouncer}.ini"

    def pidfile(self, bouncer: str) -> Path:
        return self.run / f"{bouncer}.pid"

    def bouncer_log(self, bouncer: str) -> Path:
        return self.logs / f"{bouncer}.log"


@dataclass(frozen=True)
class Bouncer:
    """One PgBouncer instance; name is its label and the stem of its files."""

    name: str
    binary: Path
    version: str
    port: int

    @property
    def prepared_statements(self) -> bool:
        return version_tuple(self.version) >= PREPARED_STATEMENTS_SINCE


@dataclass(frozen=True)
class StackState:
    """What `up` chose, remembered in stack.json for `down`, `status` and restarts."""

    port_base: int
    pg_bindir: Path
    psql: Path
    bouncers: tuple[Bouncer, ...]

    @property
    def ports(self) -> Ports:
        return Ports(self.port_base)

    def to_json(self) -> str:
        data = {
            "port_base": self.port_base,
            "pg_bindir": str(self.pg_bindir),
            "psql": str(self.psql),
            "bouncers": [
                {"name": b.name, "binary": str(b.binary), "version": b.version, "port": b.port}
                for b in self.bouncers
            ],
        }
        return json.dumps(data, indent=2) + "\n"

    @classmethod
    def load(cls, path: Path) -> StackState:
        try:
            data: dict[str, Any] = json.loads(path.read_text())
            bouncers = tuple(
                Bouncer(str(b["name"]), Path(b["binary"]), str(b["version"]), int(b["port"]))
                for b in data["bouncers"]
            )
            return cls(
                int(data["port_base"]), Path(data["pg_bindir"]), Path(data["psql"]), bouncers
            )
        except FileNotFoundError:
            raise StackError(f"no stack in {shown(path.parent)}: run `up` first") from None
        except (ValueError, KeyError, TypeError) as error:
            raise StackError(f"{shown(path)} is damaged ({error}); run `up` again") from None


@dataclass(frozen=True)
class Credentials:
    """The roles' names and passwords, from the settings classes (never hard-coded)."""

    migrate: MigrationSettings
    db: DatabaseSettings
    backup: BackupRoleSettings
    bouncer: PgBouncerSettings
    monitor: MonitorRoleSettings

    @classmethod
    def load(cls) -> Credentials:
        credentials = cls(
            _load(MigrationSettings),
            _load(DatabaseSettings),
            _load(BackupRoleSettings),
            _load(PgBouncerSettings),
            _load(MonitorRoleSettings),
        )
        names = {
            "MIGRATE_USER": credentials.migrate.user,
            "MIGRATE_DATABASE": credentials.migrate.database,
            "DB_USER": credentials.db.user,
            "DB_NAME": credentials.db.name,
            "BACKUP_USER": credentials.backup.user,
            "PGBOUNCER_STATS_USER": credentials.bouncer.stats_user,
            "MONITOR_USER": credentials.monitor.user,
        }
        for variable, name in names.items():
            if not NAME_RE.fullmatch(name):
                raise StackError(f"{variable}={name!r} must be a plain identifier ([A-Za-z0-9_])")
        return credentials


SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def _load(settings: type[SettingsT]) -> SettingsT:
    try:
        return settings()
    except (ValidationError, InsecureSettingsError) as error:
        # Named, never echoed: pydantic's own message quotes the (secret) input.
        raise StackError(f"invalid settings: {describe(error, settings)}") from None
