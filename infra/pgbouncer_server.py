"""The local stack's PgBouncer instances: configuration from infra/pgbouncer/, start, reload,
readiness and stop."""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from pathlib import Path
from string import Template

from infra.stack_state import HOST, Bouncer, Credentials, Layout, StackState
from infra.system import StackError, probe, run, shown, write_file
from services.core.os_user import ServiceUser

log = logging.getLogger("infra.stack")

TEMPLATE = Path(__file__).resolve().parent / "pgbouncer" / "pgbouncer.ini.template"
# The pooling settings compose.yaml's PgBouncer runs with too.
POOLING = TEMPLATE.with_name("pooling.ini")
READY_TIMEOUT_SECONDS = 15.0
STOP_TIMEOUT_SECONDS = 10.0


def write_userlist(paths: Layout, user: ServiceUser, credentials: Credentials) -> None:
    """The auth_file both instances share: the services' role and the stats user."""
    users = {
        credentials.db.user: credentials.db.password.get_secret_value(),
        credentials.bouncer.stats_user: credentials.bouncer.stats_password.get_secret_value(),
    }
    text = "".join(f'"{name}" "{_doubled(password)}"\n' for name, password in users.items())
    write_file(paths.userlist, text, 0o600, user)


def accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


class PgBouncerServer:
    def __init__(self, paths: Layout, user: ServiceUser, bouncer: Bouncer) -> None:
        self.paths = paths
        self.user = user
        self.bouncer = bouncer
        self.name = bouncer.name
        self.ini = paths.ini(bouncer.name)
        self.address = f"{HOST}:{bouncer.port}"

    def pid(self) -> int | None:
        """The pid of this running instance; None for a stale pidfile or a reused pid."""
        try:
            pid = int(self.paths.pidfile(self.name).read_text().split()[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            return None
        return pid if str(self.ini).encode() in cmdline.split(b"\0") else None

    def configure(self, credentials: Credentials, state: StackState) -> None:
        pooling = POOLING.read_text()
        if not self.bouncer.prepared_statements:
            # The one setting a PgBouncer before 1.21 (Debian's 1.18) does not know.
            pooling = "".join(
                line
                for line in pooling.splitlines(keepends=True)
                if not line.startswith("max_prepared_statements")
            )
        pooling_copy = self.ini.with_name(f"{self.name}-pooling.ini")
        write_file(pooling_copy, pooling, 0o600, self.user)
        ini = Template(TEMPLATE.read_text()).substitute(
            db_alias=credentials.db.name,
            postgres_port=str(state.ports.postgres),
            database=credentials.migrate.database,
            port=str(self.bouncer.port),
            auth_file=str(self.paths.userlist),
            stats_user=credentials.bouncer.stats_user,
            pooling=str(pooling_copy),
            logfile=str(self.paths.bouncer_log(self.name)),
            pidfile=str(self.paths.pidfile(self.name)),
        )
        write_file(self.ini, ini, 0o600, self.user)

    def start(self) -> None:
        """Start it as a daemon, or make a running one reload its ini and userlist."""
        label = f"{self.name} {self.bouncer.version}"
        pid = self.pid()
        if pid is not None and not self._runs(self.bouncer.binary, pid):
            # Upgraded or rebuilt binary: a reload would keep the old one running.
            log.info("%s: its binary changed, restarting", label)
            self.stop()
            pid = None
        if pid is not None:
            os.kill(pid, signal.SIGHUP)
            log.info("%s: running on %s", label, self.address)
            return
        log.info("%s: starting on %s ...", label, self.address)
        logfile = self.user.log_file(self.paths.bouncer_log(self.name))
        failure = f"PgBouncer {self.name} failed to start"
        run(
            [self.bouncer.binary, "-d", self.ini],
            failure=failure,
            user=self.user,
            cwd=self.paths.root,
            log_file=logfile,
        )
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while not (self.pid() and accepts_connections(self.bouncer.port)):
            if time.monotonic() > deadline:
                raise StackError(f"{failure}; see {shown(logfile)}")
            time.sleep(0.1)

    @staticmethod
    def _runs(binary: Path, pid: int) -> bool:
        try:
            return os.readlink(f"/proc/{pid}/exe") == str(binary.resolve())
        except OSError:
            return True  # cannot tell; keep it running

    def wait_serving(self, credentials: Credentials, psql: Path) -> None:
        """Wait until a query as the services' role goes through to PostgreSQL.

        Right after PostgreSQL (re)starts, PgBouncer still answers with its cached login
        failure for up to server_login_retry; callers of up/start_postgres expect to be served.
        """
        conninfo = (
            f"host={HOST} port={self.bouncer.port} dbname={credentials.db.name} "
            f"user={credentials.db.user} connect_timeout=3"
        )
        env = {**os.environ, "PGPASSWORD": credentials.db.password.get_secret_value()}
        command: list[str | Path] = [
            psql,
            "--no-psqlrc",
            "--tuples-only",
            f"--dbname={conninfo}",
            "-c",
            "select 1",
        ]
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while (result := probe(command, env=env)).returncode != 0:
            if time.monotonic() > deadline:
                error = " ".join(result.stderr.split()) or f"psql exit status {result.returncode}"
                raise StackError(
                    f"PgBouncer {self.name} on {self.address} does not serve queries ({error}); "
                    f"see {shown(self.paths.bouncer_log(self.name))}"
                )
            time.sleep(0.2)

    def stop(self) -> None:
        pid = self.pid()
        if pid is None:
            log.info("%s: not running", self.name)
            return
        log.info("%s: stopping ...", self.name)
        # SIGINT is the safe shutdown in every version: running transactions finish first.
        os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        while self.pid() is not None:
            if time.monotonic() > deadline:
                log.warning(
                    "%s: still busy after %.0f s, killing it", self.name, STOP_TIMEOUT_SECONDS
                )
                # Its pidfile first: the supervisor takes a pidfile left behind for a crash.
                self.paths.pidfile(self.name).unlink(missing_ok=True)
                os.kill(pid, signal.SIGKILL)
                return
            time.sleep(0.1)


def _doubled(value: str) -> str:
    """value for inside "..." in the auth_file."""
    return value.replace('"', '""')
