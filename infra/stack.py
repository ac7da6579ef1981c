"""The local process stack: PostgreSQL 15, PgBouncer and the migrations, run from system binaries
on loopback ports under a state directory, for machines without Docker, the test suite and the
load tests.

    python -m infra.stack up [--port-base N] | down [--purge] | status   [--state-dir DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pydantic import SecretStr

from infra import pgbouncer_build
from infra.app_services import APP_SERVICES, AppServiceProcess
from infra.binaries import PgBouncerBinary, find_postgres, find_psql, find_system_pgbouncer
from infra.monitoring import DEFAULT_STAFF_CHAT_ID, Monitoring, MonitoringSettings
from infra.observability.scrape import SCRAPE_INTERVAL
from infra.pgbouncer_server import PgBouncerServer, accepts_connections, write_userlist
from infra.postgres_server import PostgresServer
from infra.processes import Placement, unplaced
from infra.seaweedfs import BUCKET, ObjectStore
from infra.service_runtime import Runtime, prepare_runtime
from infra.stack_state import HOST, Bouncer, Credentials, Layout, Ports, StackState
from infra.supervisor import Component, read_records
from infra.system import Apt, StackError, file_lock, run, shown, write_file
from services.core.os_user import NoServiceUser, ServiceUser
from services.telegram_api.settings import DEV_TOKEN

log = logging.getLogger("infra.stack")

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_STATE_DIR = REPO_ROOT / ".stack"
# Every port of the stack sits below Linux's ephemeral range (32768-60999), so an outgoing
# connection's local port (or one in TIME-WAIT) never takes a port a server needs.
DEFAULT_PORT_BASE = 25430
# Linux limits a unix socket path (sun_path) to 107 bytes.
SOCKET_PATH_MAX = 107
# Its imports alone take half a minute on a busy 2-core machine.
SUPERVISOR_READY_SECONDS = 120.0
POSTGRES_BACKOFF_MAX = 4.0  # seconds between PostgreSQL's restarts at most (supervisor)
LEGACY_ENDPOINTS = (
    "pgbouncer_legacy_dsn",
    "pgbouncer_legacy_admin_dsn",
    "pgbouncer_legacy_version",
)


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    address: str
    running: bool
    detail: str


class LocalStack:
    """The stack in one state directory. Every method is idempotent."""

    def __init__(
        self,
        state_dir: Path,
        port_base: int = DEFAULT_PORT_BASE,
        service_env: Mapping[str, str] | None = None,
        scrape_interval: str = SCRAPE_INTERVAL,
        placement: Placement = unplaced,
        offsite_port_base: int | None = None,
    ) -> None:
        self.state_dir = state_dir.resolve()
        # An S3 object store (weed mini) on this machine as the offsite repository's stand-in
        # for a provider's: asked for once (`up --offsite-port-base N`), then remembered.
        self.offsite_port_base = offsite_port_base
        # Where each component's processes are born (the load tests' memory cgroups).
        self.placement = placement
        self.port_base = port_base
        self.scrape_interval = scrape_interval
        # Extra settings for the project's services (infra/app_services.py) in this stack.
        self.service_env = dict(service_env or {})
        self.paths = Layout(self.state_dir)

    @cached_property
    def _user(self) -> ServiceUser:
        try:
            return ServiceUser.detect()
        except NoServiceUser as error:
            raise StackError(str(error)) from None

    def up(self) -> dict[str, str]:
        """Install or build what is missing, start everything, migrate; return the endpoints."""
        credentials = Credentials.load()
        apt = Apt()
        pg_bindir = find_postgres(apt)
        psql = find_psql(apt, pg_bindir)
        system_bouncer = find_system_pgbouncer(apt)
        modern = (
            system_bouncer
            if system_bouncer.supports_prepared_statements
            else pgbouncer_build.ensure_built(apt)
        )
        self.paths.root.mkdir(parents=True, exist_ok=True)
        with file_lock(self.paths.lock):
            state = self._claim(pg_bindir, psql, modern, system_bouncer)
            self._prepare_directories()
            postgres = PostgresServer(self.paths, self._user, state)
            postgres.init()
            postgres.configure(credentials)
            with self.placement("postgres"):
                postgres.start(reload=True)
            postgres.apply_roles(credentials)
            write_userlist(self.paths, self._user, credentials)
            for bouncer in self._bouncers(state):
                bouncer.configure(credentials, state)
                with self.placement(bouncer.name):
                    bouncer.start()
                bouncer.wait_serving(credentials, state.psql)
            self._migrate(credentials, state)
            store = self._object_store()
            if store is not None:
                store.prepare(reader=self._user)
                with self.placement("object-store"):
                    store.start()
            self._write_endpoints(credentials, state)
            environment = {
                **os.environ,
                **self._environment(credentials, state),
                **self.service_env,
            }
            # The bot's support topics go to the staff group Alertmanager posts to, unless
            # the operator names one (set and empty: the bot runs without a staff group).
            environment.setdefault("BOT_STAFF_CHAT_ID", str(DEFAULT_STAFF_CHAT_ID))
            runtime = prepare_runtime(self.paths, self._user)
            self._prepare_stand_in_directory(runtime)
            for service in self._app_services(state):
                service.start(environment, runtime, self.placement)
                spec = service.service
                self._add_endpoint(spec.endpoint, service.url + spec.endpoint_path)
                if spec.ops is not None:
                    self._add_endpoint(spec.ops[2], service.ops_url)
                if spec.url_variable:  # unless the operator set it (e.g. the real Bot API)
                    environment.setdefault(spec.url_variable, service.url)
            monitoring = Monitoring(self.paths, state.ports)
            staff_chat = environment.get("BOT_STAFF_CHAT_ID") or DEFAULT_STAFF_CHAT_ID
            monitoring.start(
                credentials,
                MonitoringSettings(
                    scrape_interval=self.scrape_interval,
                    staff_chat_id=int(staff_chat),
                    telegram_api_url=environment["BOT_API_URL"],
                    telegram_token=environment.get("BOT_TOKEN") or DEV_TOKEN,
                ),
                apt,
                runtime,
                self.placement,
            )
            for key, url in monitoring.urls().items():
                self._add_endpoint(key, url)
            self._start_supervisor()
            return self.endpoints()

    def down(self, purge: bool = False) -> None:
        """Stop the PgBouncers and PostgreSQL, keeping the data unless purge."""
        where = shown(self.paths.root)
        if not self.paths.state.exists():
            log.info("nothing to stop: no stack in %s", where)
            if purge and self.paths.root.exists():
                raise StackError(f"not removing {where}: it has no stack.json, so it is no stack")
            return
        with file_lock(self.paths.lock):
            state = StackState.load(self.paths.state)
            self._stop_supervisor()  # first: what stops next stays stopped
            Monitoring(self.paths, state.ports).stop()
            for service in reversed(self._app_services(state)):
                service.stop()
            store = self._object_store()
            if store is not None:
                store.stop()
            for bouncer in self._bouncers(state):
                bouncer.stop()
            PostgresServer(self.paths, self._user, state).stop()
            if purge:
                shutil.rmtree(self.paths.root)
                log.info("removed %s", where)

    def stop_postgres(self, *, crash: bool = False) -> None:
        """Fast shutdown of PostgreSQL (crash: an immediate one, which the next start recovers
        from as from a crash); the PgBouncers keep running. A query through one of them then
        fails: the first after query_wait_timeout (1 s), the next ones at once with
        PgBouncer's cached login error, until start_postgres."""
        with file_lock(self.paths.lock):
            state = StackState.load(self.paths.state)
            PostgresServer(self.paths, self._user, state).stop(crash=crash)

    def start_postgres(self) -> None:
        """Start PostgreSQL again and wait until queries go through every PgBouncer."""
        credentials = Credentials.load()
        with file_lock(self.paths.lock):
            state = StackState.load(self.paths.state)
            with self.placement("postgres"):
                PostgresServer(self.paths, self._user, state).start(reload=False)
            for bouncer in self._bouncers(state):
                if bouncer.pid() is not None:
                    bouncer.wait_serving(credentials, state.psql)

    def endpoints(self) -> dict[str, str]:
        """The string entries of endpoints.json (other tools may add keys of their own)."""
        try:
            data = json.loads(self.paths.endpoints.read_text())
        except FileNotFoundError:
            raise StackError(f"no endpoints in {shown(self.paths.root)}: run `up` first") from None
        except ValueError as error:
            raise StackError(f"{shown(self.paths.endpoints)} is not valid JSON ({error})") from None
        if not isinstance(data, dict):
            raise StackError(f"{shown(self.paths.endpoints)} is not a JSON object")
        return {key: value for key, value in data.items() if isinstance(value, str)}

    def status(self) -> list[ComponentStatus]:
        """Each component, running or not; empty when `up` never ran here."""
        if not self.paths.state.exists():
            return []
        state = StackState.load(self.paths.state)
        postgres = PostgresServer(self.paths, self._user, state)
        pid = postgres.pid()
        components = [
            ComponentStatus(
                "postgres", postgres.address, pid is not None, "PostgreSQL" + _pid_note(pid)
            )
        ]
        for bouncer in self._bouncers(state):
            pid = bouncer.pid()
            detail = f"PgBouncer {bouncer.bouncer.version}{_pid_note(pid)}"
            components.append(
                ComponentStatus(bouncer.name, bouncer.address, pid is not None, detail)
            )
        for service in self._app_services(state):
            pid = service.pid()
            components.append(
                ComponentStatus(
                    service.name,
                    service.url,
                    pid is not None,
                    service.service.module + _pid_note(pid),
                )
            )
        store = self._object_store()
        if store is not None:
            pid = store.pid()
            detail = "weed mini: the offsite repository's S3" + _pid_note(pid)
            components.append(
                ComponentStatus("object-store", store.endpoint, pid is not None, detail)
            )
        for process in Monitoring(self.paths, state.ports).processes():
            pid = process.pid()
            address = process.health_url.split("//", 1)[1].split("/", 1)[0]
            detail = process.program + _pid_note(pid)
            components.append(ComponentStatus(process.name, address, pid is not None, detail))
        pid = self._supervisor_pid()
        components.append(
            ComponentStatus("supervisor", "-", pid is not None, "infra.supervisor" + _pid_note(pid))
        )
        records = read_records(self.paths.run / "supervision.json")
        return [_with_restarts(c, records.get(c.name)) for c in components]

    def supervised(self) -> list[Component]:
        """Every component the supervisor restarts when it dies (infra/supervisor.py)."""
        state = StackState.load(self.paths.state)
        postgres = PostgresServer(self.paths, self._user, state)
        pgdata_pid = self.paths.pgdata / "postmaster.pid"
        components = [
            Component(
                "postgres",
                lambda: _postmaster(pgdata_pid),  # pg_ctl status, without a process per look
                postgres.stopped_marker.exists,
                lambda: _start_postgres_again(postgres),
                # A failed start costs the postmaster a second, and while it is down nothing
                # works: tried again every few seconds at most (a full pg_wal, once freed).
                backoff_max=POSTGRES_BACKOFF_MAX,
            )
        ]
        for bouncer in self._bouncers(state):
            pidfile = self.paths.pidfile(bouncer.name)
            components.append(
                Component(
                    bouncer.name,
                    bouncer.pid,
                    _gone(pidfile),  # its shutdown removes it
                    bouncer.start,
                )
            )
        processes = [service.process for service in self._app_services(state)]
        processes += Monitoring(self.paths, state.ports).processes()
        components += [
            Component(p.name, p.pid, p.stopped_on_purpose, p.relaunch) for p in processes
        ]
        return components

    def _object_store(self) -> ObjectStore | None:
        """This stack's object store: asked for now, or remembered from an earlier `up`."""
        root = self.paths.root / "object-store"
        remembered = root / "port-base"
        if self.offsite_port_base is not None:
            root.mkdir(parents=True, exist_ok=True)
            remembered.write_text(f"{self.offsite_port_base}\n")
        try:
            return ObjectStore(root, int(remembered.read_text()))
        except (FileNotFoundError, ValueError):
            return None

    def offsite_note(self) -> str:
        store = self._object_store()
        if store is not None:
            return f"offsite: bucket {BUCKET} on this machine's object store ({store.endpoint})"
        return (
            "offsite: NOT CONFIGURED: every backup is on this machine "
            "(docs/offsite-backups.md; `up --offsite-port-base N` runs a local object store)"
        )

    def _offsite_environment(self) -> dict[str, str]:
        store = self._object_store()
        if store is None:
            return {}
        passphrase = self.paths.root / "offsite-passphrase"
        if not passphrase.exists():
            # Generated once; without it the offsite repository cannot be read (copy it off
            # the machine: docs/offsite-backups.md).
            write_file(passphrase, secrets.token_urlsafe(48) + "\n", 0o600, self._user)
        return {
            **store.settings(),
            "BACKUP_SERVICE_OFFSITE_PASSPHRASE_FILE": str(passphrase),
        }

    def _supervisor_pid(self) -> int | None:
        try:
            pid = int((self.paths.run / "supervisor.pid").read_text().split()[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            return None
        return pid if b"infra.supervisor" in cmdline else None

    def _start_supervisor(self) -> None:
        if self._supervisor_pid() is not None:
            return
        log_file = self.paths.logs / "supervisor.log"
        fd = os.open(log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "infra.supervisor", "--state-dir", str(self.paths.root)],
                cwd=REPO_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=fd,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            os.close(fd)
        (self.paths.run / "supervisor.pid").write_text(f"{process.pid}\n")
        # Until its first look, a process that died would be restarted without its reason.
        deadline = time.monotonic() + SUPERVISOR_READY_SECONDS
        records = self.paths.run / "supervision.json"
        while read_records(records).get("supervisor", {}).get("pid") != process.pid:
            if process.poll() is not None or time.monotonic() > deadline:
                raise StackError(f"the supervisor failed to start; see {shown(log_file)}")
            time.sleep(0.2)
        log.info("supervisor: watching every component (pid %d)", process.pid)

    def _stop_supervisor(self) -> None:
        pid = self._supervisor_pid()
        (self.paths.run / "supervisor.pid").unlink(missing_ok=True)
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid}").exists() and _alive(pid):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)

    def _bouncers(self, state: StackState) -> list[PgBouncerServer]:
        return [PgBouncerServer(self.paths, self._user, b) for b in state.bouncers]

    def _app_services(self, state: StackState) -> list[AppServiceProcess]:
        return [AppServiceProcess(self.paths, state.ports, s) for s in APP_SERVICES]

    def _add_endpoint(self, key: str, value: str) -> None:
        endpoints = json.loads(self.paths.endpoints.read_text())
        endpoints[key] = value
        write_file(self.paths.endpoints, json.dumps(endpoints, indent=2) + "\n", 0o600)

    def _claim(
        self, pg_bindir: Path, psql: Path, modern: PgBouncerBinary, system: PgBouncerBinary
    ) -> StackState:
        """Decide ports and instances, check that nothing else holds them, remember them."""
        ports = Ports(self.port_base)
        # The stack runs its own copy of a PgBouncer it built: root's cache is not readable by
        # the service user, and clearing the cache must not pull the binary from under a
        # running PgBouncer.
        built = modern.path.is_relative_to(pgbouncer_build.cache_dir())
        modern_path = self.paths.bin / f"pgbouncer-{modern.version}" if built else modern.path
        bouncers = [Bouncer("pgbouncer", modern_path, modern.version, ports.pgbouncer)]
        if not system.supports_prepared_statements:
            legacy = Bouncer(
                "pgbouncer-legacy", system.path, system.version, ports.pgbouncer_legacy
            )
            bouncers.append(legacy)
        state = StackState(self.port_base, pg_bindir, psql, tuple(bouncers))
        try:
            previous: StackState | None = StackState.load(self.paths.state)
        except StackError:  # first up here, or a stack.json `up` is about to rewrite
            previous = None
        if previous and previous.port_base != self.port_base and self._running(previous):
            raise StackError(
                f"the stack in {shown(self.paths.root)} runs on port base "
                f"{previous.port_base}; run `down` first to move it to {self.port_base}"
            )
        if previous:
            # The legacy instance goes away once the system PgBouncer is new enough.
            wanted = {bouncer.name for bouncer in bouncers}
            for server in self._bouncers(previous):
                if server.name not in wanted:
                    server.stop()
        socket_path = self.paths.run / f".s.PGSQL.{ports.postgres}"
        if len(str(socket_path).encode()) > SOCKET_PATH_MAX:
            raise StackError(
                f"the socket path {socket_path} is longer than {SOCKET_PATH_MAX} bytes; "
                "use a shorter --state-dir"
            )
        needed = [] if self._running_postgres(state) else [("PostgreSQL", ports.postgres)]
        needed += [
            ("PgBouncer", server.bouncer.port)
            for server in self._bouncers(state)
            if server.pid() is None
        ]
        for component, port in needed:
            if accepts_connections(port):
                raise StackError(
                    f"{HOST}:{port} (for {component}) is in use by a process outside "
                    f"{shown(self.paths.root)}; choose another --port-base"
                )
        if built:
            _install_copy(modern.path, modern_path)
        write_file(self.paths.state, state.to_json(), 0o644)
        return state

    def _running_postgres(self, state: StackState) -> bool:
        return PostgresServer(self.paths, self._user, state).pid() is not None

    def _running(self, state: StackState) -> bool:
        bouncers = self._bouncers(state)
        return self._running_postgres(state) or any(b.pid() is not None for b in bouncers)

    def _prepare_directories(self) -> None:
        modes = {
            self.paths.pgdata: 0o700,  # initdb and postgres insist
            self.paths.wal_archive: 0o700,
            self.paths.run: 0o755,
            self.paths.logs: 0o755,
            self.paths.pgbouncer: 0o700,  # passwords in the userlist
            # The backup service runs as the service user and keeps its backups here.
            self.paths.root / "backups": 0o750,
        }
        for directory, mode in modes.items():
            directory.mkdir(mode=mode, exist_ok=True)
            self._user.own(directory)

    def _prepare_stand_in_directory(self, runtime: Runtime) -> None:
        """The Telegram stand-in (run as the app user) keeps the message ids it handed out
        here: the database outlives it, so a restarted one must continue above them."""
        directory = self.paths.root / "telegram-api"
        directory.mkdir(mode=0o700, exist_ok=True)
        if runtime.app_user is not None:
            os.chown(directory, runtime.app_user.uid, runtime.app_user.gid)

    def _environment(self, credentials: Credentials, state: StackState) -> dict[str, str]:
        """How services reach this stack, as the environment variables of the settings."""
        migrate, db, backup = credentials.migrate, credentials.db, credentials.backup
        return {
            "DB_HOST": HOST,
            "DB_PORT": str(state.ports.pgbouncer),
            "DB_NAME": db.name,
            "DB_USER": db.user,
            "DB_PASSWORD": db.password.get_secret_value(),
            "DB_PREPARED_STATEMENTS": "true",  # DB_PORT is the modern PgBouncer
            "MIGRATE_HOST": HOST,
            "MIGRATE_PORT": str(state.ports.postgres),
            "MIGRATE_DATABASE": migrate.database,
            "MIGRATE_USER": migrate.user,
            "MIGRATE_PASSWORD": migrate.password.get_secret_value(),
            "BACKUP_USER": backup.user,
            "BACKUP_PASSWORD": backup.password.get_secret_value(),
            "PGBOUNCER_STATS_USER": credentials.bouncer.stats_user,
            "PGBOUNCER_STATS_PASSWORD": credentials.bouncer.stats_password.get_secret_value(),
            # The backup service keeps its backups and scratch clusters in this stack's
            # directory; it has no default, so two stacks never share one backup catalogue.
            "BACKUP_SERVICE_STATE_DIR": str(self.paths.root),
            "TELEGRAM_API_STATE_DIR": str(self.paths.root / "telegram-api"),
            **self._offsite_environment(),
        }

    def _migrate(self, credentials: Credentials, state: StackState) -> None:
        log.info("migrations: alembic upgrade head ...")
        run(
            [sys.executable, "-m", "alembic", "-c", REPO_ROOT / "alembic.ini", "upgrade", "head"],
            failure="migrations (alembic upgrade head) failed",
            cwd=REPO_ROOT,
            env={**os.environ, **self._environment(credentials, state)},
            log_file=self.paths.logs / "migrate.log",
        )

    def _write_endpoints(self, credentials: Credentials, state: StackState) -> dict[str, str]:
        migrate, db, backup = credentials.migrate, credentials.db, credentials.backup
        stats = credentials.bouncer
        postgres = state.ports.postgres
        modern, *legacy = state.bouncers
        ours = {
            "postgres_dsn": _dsn(migrate.user, migrate.password, postgres, migrate.database),
            "pgbouncer_dsn": _dsn(db.user, db.password, modern.port, db.name),
            "pgbouncer_admin_dsn": _dsn(
                stats.stats_user, stats.stats_password, modern.port, "pgbouncer"
            ),
            "backup_dsn": _dsn(backup.user, backup.password, postgres, migrate.database),
            "pgbouncer_version": modern.version,
            "state_dir": str(self.paths.root),
            "env_file": str(self.paths.env),
        }
        for old in legacy:
            ours |= {
                "pgbouncer_legacy_dsn": _dsn(db.user, db.password, old.port, db.name),
                "pgbouncer_legacy_admin_dsn": _dsn(
                    stats.stats_user, stats.stats_password, old.port, "pgbouncer"
                ),
                "pgbouncer_legacy_version": old.version,
            }
        try:
            existing = json.loads(self.paths.endpoints.read_text())
        except (FileNotFoundError, ValueError):
            existing = {}
        # Keep what other tools added; drop the legacy keys when there is no legacy instance.
        kept = {
            key: value
            for key, value in (existing if isinstance(existing, dict) else {}).items()
            if key not in LEGACY_ENDPOINTS
        }
        write_file(self.paths.endpoints, json.dumps(kept | ours, indent=2) + "\n", 0o600)
        env = self._environment(credentials, state)
        text = "".join(f"{key}={shlex.quote(value)}\n" for key, value in env.items())
        write_file(self.paths.env, text, 0o600)
        return self.endpoints()


def _install_copy(source: Path, copy: Path) -> None:
    if copy.exists() and copy.read_bytes() == source.read_bytes():
        return
    copy.parent.mkdir(exist_ok=True)
    temp = copy.with_name(f".{copy.name}.tmp")
    shutil.copy2(source, temp)
    os.replace(temp, copy)  # works even while the old copy is running


def _start_postgres_again(postgres: PostgresServer) -> None:
    """After a crash: pg_ctl takes a killed postmaster that is not yet reaped (a zombie) for
    a running one, and would start nothing."""
    if postgres.pid() is not None:
        raise StackError("the killed postmaster has not been reaped yet")
    postgres.start(reload=False)


def _postmaster(pidfile: Path) -> int | None:
    try:
        pid = int(pidfile.read_text().split()[0])
        name = Path(f"/proc/{pid}/comm").read_text().strip()
    except (OSError, ValueError, IndexError):
        return None
    return pid if name in ("postgres", "postmaster") and _alive(pid) else None


def _gone(pidfile: Path) -> Callable[[], bool]:
    """Stopped on purpose: a clean shutdown removes the pidfile, a crash leaves it."""
    return lambda: not pidfile.exists()


def _alive(pid: int) -> bool:
    try:
        return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


def _with_restarts(component: ComponentStatus, record: dict[str, Any] | None) -> ComponentStatus:
    if not record or not record.get("restarts"):
        return component
    detail = (
        f"{component.detail}; restarts {record['restarts']}, last exit: {record['last_exit']} "
        f"at {record['last_exit_at']}"
    )
    return dataclasses.replace(component, detail=detail)


def _pid_note(pid: int | None) -> str:
    return f", pid {pid}" if pid is not None else ""


def _dsn(user: str, password: SecretStr, port: int, database: str) -> str:
    secret = quote(password.get_secret_value(), safe="")
    return f"postgresql://{user}:{secret}@{HOST}:{port}/{database}"


def _masked(value: str) -> str:
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", value)


def _port_base(state_dir: Path, requested: int | None) -> int:
    """The requested port base, else the one the state directory remembers, else the default."""
    if requested is not None:
        return requested
    try:
        return StackState.load(Layout(state_dir).state).port_base
    except StackError:
        return DEFAULT_PORT_BASE


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m infra.stack",
        description=textwrap.fill(
            "Run the bot stack as local processes on 127.0.0.1: PostgreSQL 15, PgBouncer, and "
            "the project's services (the Telegram Bot API stand-in, the bot, the admin API, "
            "the backup service), with all state (data, WAL archive, sockets, logs, "
            "endpoints.json, env) in one directory. As root it installs missing Debian "
            "packages and runs nothing as root: the servers and the backup service as the OS "
            "user postgres, the other services as botstack.",
            width=88,
        ),
        # The commands' own options, so that the top-level --help shows every option there is
        # (each command's --help explains them in full).
        epilog=(
            "commands and their options:\n"
            "  up [--port-base N] [--scrape-interval S]  start the stack; --port-base moves "
            "every port\n"
            f"                                            (default: the state directory's, else "
            f"{DEFAULT_PORT_BASE})\n"
            "  down [--purge]                            stop the stack; --purge also removes "
            "the state directory\n"
            "  status                                    show each component (exit 3 when one "
            "is stopped)\n"
            "--state-dir may also follow the command. Example:\n"
            "  python -m infra.stack up --state-dir /tmp/stack --port-base 30000"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    state_help = f"state directory (default: {shown(DEFAULT_STATE_DIR)})"
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR, help=state_help)
    # Also accepted after the command; SUPPRESS keeps an absent one from resetting the above.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--state-dir", type=Path, default=argparse.SUPPRESS, help=state_help)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    up = commands.add_parser(
        "up",
        parents=[common],
        help="start the stack (idempotent) and print its endpoints",
        description=(
            "Install or build what is missing, initialize and start PostgreSQL, create the "
            "roles and the database, start PgBouncer (1.21+ on base+1002 and, when the system "
            "one is older, that one as the legacy instance on base+1003), run the migrations, "
            "start the project's services from base+2000 (admin API +2000, backup +2001, bot "
            "webhook +2002, stand-in +2003, bot health and metrics +2004), write "
            "endpoints.json and env, and print the endpoints. On a running stack it re-checks "
            "everything and reprints."
        ),
    )
    up.add_argument(
        "--port-base",
        type=int,
        help=(
            "PostgreSQL listens on base+2, PgBouncer on base+1002 (legacy: base+1003); "
            f"default: what the state directory remembers, else {DEFAULT_PORT_BASE}"
        ),
    )
    up.add_argument(
        "--offsite-port-base",
        type=int,
        help=(
            "run an S3 object store (SeaweedFS weed mini, TLS) on ports N..N+13 as the offsite "
            "repository (docs/offsite-backups.md); remembered by later `up`s"
        ),
    )
    up.add_argument(
        "--scrape-interval",
        default=SCRAPE_INTERVAL,
        help=f"how often Prometheus scrapes and evaluates the rules (default {SCRAPE_INTERVAL})",
    )
    down = commands.add_parser(
        "down",
        parents=[common],
        help="stop the stack, keeping its data",
        description=(
            "Stop the project's services, the PgBouncers and PostgreSQL (fast shutdown). "
            "Harmless when stopped."
        ),
    )
    down.add_argument("--purge", action="store_true", help="also remove the state directory")
    commands.add_parser(
        "status",
        parents=[common],
        help="show each component, running or not, with its address",
        description="Show each component; the exit status is 3 when any of them is not running.",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    state_dir: Path = args.state_dir
    stack = LocalStack(
        state_dir,
        _port_base(state_dir, getattr(args, "port_base", None)),
        scrape_interval=getattr(args, "scrape_interval", SCRAPE_INTERVAL),
        offsite_port_base=getattr(args, "offsite_port_base", None),
    )
    where = shown(stack.state_dir)
    try:
        if args.command == "up":
            endpoints = stack.up()
            width = max(map(len, endpoints))
            for key, value in endpoints.items():
                print(f"  {key:<{width}}  {_masked(value)}")
            print(f"stack is up (state: {where})")
        elif args.command == "down":
            stack.down(purge=args.purge)
            print(f"stack is down (state: {where})")
        else:
            components = stack.status()
            if not components:
                print(f"no stack in {where}")
                return 3
            for c in components:
                state = "running" if c.running else "stopped"
                print(f"{c.name:<18} {state:<8} {c.address:<24} {c.detail}")
            print(stack.offsite_note())
            return 0 if all(c.running for c in components) else 3
    except StackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
