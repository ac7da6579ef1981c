"""The local stack's PostgreSQL: initdb, configuration from infra/postgres/, pg_ctl, roles."""

from __future__ import annotations

import logging
import shlex
from pathlib import Path
from string import Template

from infra.stack_state import HOST, Credentials, Layout, StackState
from infra.system import probe, run, shown, write_file
from services.core.os_user import ServiceUser

log = logging.getLogger("infra.stack")

TEMPLATES = Path(__file__).resolve().parent / "postgres"
# Our settings file, included at the end of the postgresql.conf initdb wrote; it includes
# the copy of the settings both modes share (infra/postgres/postgresql.conf).
INCLUDED_CONF = "botstack.conf"
SHARED_CONF = "botstack-shared.conf"
READY_TIMEOUT_SECONDS = 30


def archive_command(archive_dir: Path) -> str:
    """The shell command PostgreSQL runs to archive one WAL file (%p: its path, %f: its name):
    infra/postgres/archive-wal.sh stores it zstd-compressed, atomically, never overwriting an
    archived file, and exits non-zero on any failure so that PostgreSQL retries."""
    script = shlex.quote(str(TEMPLATES / "archive-wal.sh"))
    return f"sh {script} %p %f {shlex.quote(str(archive_dir))}"


class PostgresServer:
    def __init__(self, paths: Layout, user: ServiceUser, state: StackState) -> None:
        self.paths = paths
        self.user = user
        self.state = state
        self.address = f"{HOST}:{state.ports.postgres}"

    @property
    def stopped_marker(self) -> Path:
        """Present while PostgreSQL is stopped on purpose (`down`, `stop_postgres`): the
        supervisor starts a postmaster that went away without it, even one that shut itself
        down cleanly (its startup failed: a full pg_wal, a crash recovery that could not
        finish), as compose's `restart: unless-stopped` restarts a container that exited."""
        return self.paths.run / "postgres.stopped"

    @property
    def initialized(self) -> bool:
        return (self.paths.pgdata / "PG_VERSION").exists()

    def init(self) -> None:
        """initdb, once; our settings then come from an included file rewritten on every up."""
        if not self.initialized:
            log.info("postgres: initdb %s ...", shown(self.paths.pgdata))
            self._run_as_service(
                "initdb",
                f"--pgdata={self.paths.pgdata}",
                f"--username={self.user.name}",
                "--data-checksums",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                "--auth-local=peer",
                "--auth-host=scram-sha-256",
                failure="initdb failed",
                log_file=self.paths.logs / "initdb.log",
            )
        conf = self.paths.pgdata / "postgresql.conf"
        include = f"include '{INCLUDED_CONF}'\n"
        if include not in conf.read_text():
            with conf.open("a") as handle:
                handle.write(f"\n# The local stack's settings (infra/stack.py).\n{include}")

    def configure(self, credentials: Credentials) -> None:
        settings = _render(
            "postgresql.conf.template",
            port=str(self.state.ports.postgres),
            socket_dir=_conf_literal(str(self.paths.run)),
            archive_command=_conf_literal(archive_command(self.paths.wal_archive)),
            shared_conf=SHARED_CONF,
        )
        shared = (TEMPLATES / "postgresql.conf").read_text()
        hba = _render(
            "pg_hba.conf.template",
            superuser=self.user.name,
            backup_user=credentials.backup.user,
        )
        write_file(self.paths.pgdata / SHARED_CONF, shared, 0o600, self.user)
        write_file(self.paths.pgdata / INCLUDED_CONF, settings, 0o600, self.user)
        write_file(self.paths.pgdata / "pg_hba.conf", hba, 0o600, self.user)

    def pid(self) -> int | None:
        pg_ctl = self.state.pg_bindir / "pg_ctl"
        if probe([pg_ctl, "status", "-D", self.paths.pgdata], user=self.user).returncode != 0:
            return None
        try:
            return int((self.paths.pgdata / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def start(self, *, reload: bool) -> None:
        """Start and wait until it accepts connections; if running, reload the configuration
        when asked to."""
        if self.pid() is not None:
            if reload:
                self._run_as_service(
                    "pg_ctl", "reload", "-s", "-D", self.paths.pgdata, failure="pg_ctl reload"
                )
            log.info("postgres: running on %s", self.address)
            self.stopped_marker.unlink(missing_ok=True)
            return
        log.info("postgres: starting on %s ...", self.address)
        self._run_as_service(
            "pg_ctl",
            "start",
            "-w",
            "-s",
            f"--timeout={READY_TIMEOUT_SECONDS}",
            "-D",
            self.paths.pgdata,
            "-l",
            self.paths.postgres_log,
            failure="PostgreSQL failed to start",
            log_file=self.paths.postgres_log,
        )
        # Only once it runs: meanwhile the supervisor must not take it for dead.
        self.stopped_marker.unlink(missing_ok=True)

    def stop(self, *, crash: bool = False) -> None:
        if self.paths.run.is_dir():
            self.stopped_marker.touch()  # first: the supervisor must not start it meanwhile
        if not self.initialized or self.pid() is None:
            log.info("postgres: not running")
            return
        log.info("postgres: stopping ...")
        self._run_as_service(
            "pg_ctl",
            "stop",
            "-w",
            "-s",
            "-m",
            "immediate" if crash else "fast",
            "-D",
            self.paths.pgdata,
            failure="PostgreSQL failed to stop",
            log_file=self.paths.postgres_log,
        )

    def apply_roles(self, credentials: Credentials) -> None:
        """Create or update the roles and the database with infra/postgres/roles.sql."""
        variables = {
            "database": credentials.migrate.database,
            "migrate_user": credentials.migrate.user,
            "migrate_password": credentials.migrate.password.get_secret_value(),
            "app_user": credentials.db.user,
            "app_password": credentials.db.password.get_secret_value(),
            "backup_user": credentials.backup.user,
            "backup_password": credentials.backup.password.get_secret_value(),
            "monitor_user": credentials.monitor.user,
            "monitor_password": credentials.monitor.password.get_secret_value(),
        }
        # \set on stdin rather than -v on the command line keeps the passwords out of `ps`.
        script = "".join(
            f"\\set {name} {_psql_literal(value)}\n" for name, value in variables.items()
        )
        script += (TEMPLATES / "roles.sql").read_text()
        run(
            [
                self.state.psql,
                f"--host={self.paths.run}",
                f"--port={self.state.ports.postgres}",
                "--dbname=postgres",
                "--no-psqlrc",
                "--quiet",
                "--set=ON_ERROR_STOP=1",
                "--file=-",
            ],
            failure=f"applying {shown(TEMPLATES / 'roles.sql')} failed",
            user=self.user,
            cwd=self.paths.root,
            stdin=script,
        )
        log.info("postgres: roles and database %s ready", credentials.migrate.database)

    def _run_as_service(
        self, program: str, *args: str | Path, failure: str, log_file: Path | None = None
    ) -> None:
        run(
            [self.state.pg_bindir / program, *args],
            failure=failure,
            user=self.user,
            cwd=self.paths.root,  # the service user may not be able to enter ours
            log_file=self.user.log_file(log_file) if log_file else None,
        )


def _render(template: str, **values: str) -> str:
    return Template((TEMPLATES / template).read_text()).substitute(values)


def _conf_literal(value: str) -> str:
    """value for inside '...' in postgresql.conf."""
    return value.replace("'", "''")


def _psql_literal(value: str) -> str:
    """value as a quoted argument of a psql meta-command."""
    escaped = value.replace("\\", "\\\\").replace("'", "''").replace("\n", "\\n")
    return f"'{escaped}'"
