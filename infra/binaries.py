"""Finding (and, when root, installing) the PostgreSQL 15, psql and system PgBouncer binaries."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from infra.system import Apt, StackError, probe
from infra.topology import versions

PG_MAJOR = versions()["POSTGRES_MAJOR"]  # compose.yaml's, as its image installs it
DEBIAN_PG_BINDIR = Path(f"/usr/lib/postgresql/{PG_MAJOR}/bin")
# Protocol-level prepared statements (max_prepared_statements) arrived in PgBouncer 1.21.
PREPARED_STATEMENTS_SINCE = (1, 21)


@dataclass(frozen=True)
class PgBouncerBinary:
    path: Path
    version: str

    @property
    def supports_prepared_statements(self) -> bool:
        return version_tuple(self.version) >= PREPARED_STATEMENTS_SINCE


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def pgbouncer_version(path: Path) -> str | None:
    """The version `pgbouncer --version` reports, or None when it does not run."""
    result = probe([path, "--version"])
    match = re.match(r"PgBouncer (\d+\.\d+\.\d+)", result.stdout)
    return match.group(1) if result.returncode == 0 and match else None


def _pg_bindir() -> Path | None:
    candidates = [DEBIAN_PG_BINDIR]
    pg_config = probe(["pg_config", "--bindir"])
    if pg_config.returncode == 0 and pg_config.stdout.strip():
        candidates.append(Path(pg_config.stdout.strip()))
    for bindir in candidates:
        version = probe([bindir / "postgres", "--version"])
        if version.returncode == 0 and re.search(rf"\b{PG_MAJOR}\.\d+", version.stdout):
            return bindir
    return None


def find_postgres(apt: Apt) -> Path:
    """The directory holding PostgreSQL 15's postgres, initdb and pg_ctl."""
    bindir = _pg_bindir()
    if bindir is None:
        apt.install(["postgresql-15"], "PostgreSQL 15 server")
        bindir = _pg_bindir()
    if bindir is None:
        raise StackError(
            f"PostgreSQL {PG_MAJOR} not found in {DEBIAN_PG_BINDIR} nor at `pg_config --bindir`; "
            "install the Debian package postgresql-15"
        )
    return bindir


def find_psql(apt: Apt, pg_bindir: Path) -> Path:
    def locate() -> Path | None:
        if (pg_bindir / "psql").exists():
            return pg_bindir / "psql"
        found = shutil.which("psql")
        return Path(found) if found else None

    psql = locate()
    if psql is None:
        apt.install(["postgresql-client-15"], "psql")
        psql = locate()
    if psql is None:
        raise StackError("psql not found; install the Debian package postgresql-client-15")
    return psql


def find_system_pgbouncer(apt: Apt) -> PgBouncerBinary:
    def locate() -> PgBouncerBinary | None:
        # /usr/sbin is not on a normal user's PATH.
        for candidate in (shutil.which("pgbouncer"), "/usr/sbin/pgbouncer"):
            if candidate and (version := pgbouncer_version(Path(candidate))):
                return PgBouncerBinary(Path(candidate), version)
        return None

    binary = locate()
    if binary is None:
        apt.install(["pgbouncer"], "PgBouncer")
        binary = locate()
    if binary is None:
        raise StackError("pgbouncer not found; install the Debian package pgbouncer")
    return binary


def find_promtool(apt: Apt) -> Path:
    """promtool, from Debian's prometheus package (2.42): it checks and unit-tests the rules."""
    found = shutil.which("promtool")
    if found is None:
        apt.install(["prometheus"], "promtool (Prometheus)")
        found = shutil.which("promtool")
    if found is None:
        raise StackError("promtool not found; install the Debian package prometheus")
    return Path(found)
