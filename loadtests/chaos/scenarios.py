"""The chaos scenarios: each injects one fault into the running stack for a set time and ends
it; the runner (loadtests/chaos/runner.py) keeps Telegram-like traffic going around it and
judges what it did. A kill is a fault of no duration: it ends when it is done, and what follows
(the supervisor's restart, the redeliveries) is the recovery being measured.

Expected alerts: the local stack's rules (infra/prometheus/rules/) mostly hold for a minute
(`for: 1m`), Prometheus evaluating every second in the chaos stack. The error-rate rules look
at a 2-minute rate, so a burst of failed updates keeps them above their threshold for over a
minute: a database outage of a few seconds fires DatabaseErrorRate and BotUpdateErrorRate
(measured). A fault that fails no update (the bot's own restart behind Telegram's
redelivery, latency) has no alert to fire, and the scenario says why rather than waiting on
one that must not fire."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from infra.supervisor import read_records
from loadtests.chaos.filesystems import MIB, ArchiveOnLoop, LoopFilesystem, WalOnLoop
from loadtests.chaos.oom import BotMemoryGroup
from loadtests.chaos.proxy import Mode
from services.core.os_user import ServiceUser

if TYPE_CHECKING:
    from loadtests.chaos.runner import Context


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    inject: Callable[[Context], None]
    heal: Callable[[Context], None] = lambda context: None
    fault_seconds: float = 0.0  # between inject and heal
    # Any one of these firing during the scenario is the alert this fault should raise.
    expected_alerts: tuple[str, ...] = ()
    why_no_alert: str = ""  # when expected_alerts is empty
    replicas: bool = False  # two bot processes behind the harness's balancer
    # Before the traffic and undone after the checks, on every way out (a small filesystem,
    # a memory group): what it yields is the context's `fixture`.
    setup: Callable[[Context], AbstractContextManager[Any]] | None = None
    # After the traffic, before the checks: what this fault must have done, and undone.
    after: Callable[[Context], None] | None = None
    notes: list[str] = field(default_factory=list)


# -- helpers --------------------------------------------------------------------------


def _kill(context: Context, name: str, sig: signal.Signals) -> None:
    pid = context.pid(name)
    if pid is None:
        raise RuntimeError(f"{name} is not running")
    os.kill(pid, sig)


def _drop_server_connections(context: Context) -> None:
    """What PgBouncer's RECONNECT does, abruptly: every server connection of the app's role
    closed under PgBouncer, which opens new ones (the local PgBouncer has no admin user for
    its console, only a stats user, so the command itself cannot be sent). Closed by the
    cluster's superuser."""
    done = context.superuser_sql(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE usename = 'app' AND pid <> pg_backend_pid()"
    )
    if done.returncode != 0:
        raise RuntimeError(f"closing the server connections failed: {done.stderr.strip()}")
    context.note(f"{done.stdout.strip()} server connections of the app role closed")


def _telegram_fault(context: Context, body: dict[str, Any] | None) -> None:
    url = f"{context.endpoints['telegram_api_url']}/__control/faults"
    request = urllib.request.Request(
        url,
        method="POST" if body else "DELETE",
        data=json.dumps(body).encode() if body else None,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        reply.read()


def _pause_resume(context: Context) -> None:
    """PAUSE then RESUME, three times, each pause 8 s: PgBouncer's SIGUSR1 and SIGUSR2 (its
    console's PAUSE and RESUME; the local PgBouncer has no admin user for the console)."""
    for _ in range(3):
        _kill(context, "pgbouncer", signal.SIGUSR1)
        time.sleep(8)
        _kill(context, "pgbouncer", signal.SIGUSR2)
        time.sleep(2)


def _postgres_restart(context: Context) -> None:
    """An immediate restart, as an operator's `pg_ctl restart -m immediate`: the supervisor
    sees no death (pg_ctl stop removes the pidfile), pg_ctl starts it again."""
    context.stack.stop_postgres(crash=True)
    context.stack.start_postgres()


def _admin_outage_end(context: Context) -> None:
    """After 70 s without PostgreSQL (staff kept using the admin API meanwhile): the admin
    API answers 503 with a clear error, and serves again once PostgreSQL is back."""
    during = context.admin_status("/users?limit=5")
    context.stack.start_postgres()
    deadline = time.monotonic() + 30
    after = context.admin_status("/users?limit=5")
    while after != 200 and time.monotonic() < deadline:
        time.sleep(0.5)
        after = context.admin_status("/users?limit=5")
    context.note(f"the admin API answered {during} during the outage, {after} after it")
    if during != 503 or after != 200:
        context.fail(f"the admin API answered {during} during the outage and {after} after")


BACKUP = [sys.executable, "-m", "services.backup.cli", "backup"]


def _backup_environment(context: Context) -> dict[str, str]:
    return {
        **os.environ,
        **context.environment,
        "BACKUP_SERVICE_STATE_DIR": str(context.stack.paths.root),
    }


def _backup_during_restart(context: Context) -> None:
    """A base backup started, and PostgreSQL restarted (immediate) once pg_basebackup is
    streaming the data files (pg_stat_progress_basebackup): the restart must catch it in
    flight, not after it (a backup of this small database takes a second or two, so a backup
    that finished before it was seen streaming is started again, up to three times)."""
    for attempt in range(1, 4):
        backup = subprocess.Popen(
            BACKUP,
            env=_backup_environment(context),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        while backup.poll() is None:
            phase = context.superuser_sql("SELECT phase FROM pg_stat_progress_basebackup")
            if phase.stdout.strip() == "streaming database files":
                break
        if backup.poll() is None:
            _postgres_restart(context)
            break
        backup.communicate()
        context.note(f"backup {attempt} finished before it was seen streaming: again")
    else:
        context.fail("no backup was caught streaming by the restart in three attempts")
        return
    output, _ = backup.communicate(timeout=300)
    last = output.strip().splitlines()[-1] if output.strip() else ""
    context.note(f"the backup caught streaming by the restart exited {backup.returncode}: {last}")
    leftovers = list((context.stack.paths.root / "backups").rglob(".*.partial"))
    if leftovers:
        context.fail(f"the interrupted backup left a partial directory: {leftovers[0]}")
    if backup.returncode != 0 and "base backup" not in last:
        context.fail(f"the interrupted backup gave no clear error: {output[-400:]}")
    # The next one, on the restarted server, must succeed.
    again = subprocess.run(
        BACKUP,
        env=_backup_environment(context),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    context.note(f"the backup after the restart exited {again.returncode}")
    if again.returncode != 0:
        context.fail(
            f"a backup after the restart failed: {again.stdout[-300:]}{again.stderr[-300:]}"
        )


# -- postgres-disk-full ---------------------------------------------------------------------

# The segment switches the fault may force before PostgreSQL needs a new WAL file.
MAX_SWITCHES = 40


def _postgres_restarts(context: Context) -> int:
    record = read_records(context.stack.paths.run / "supervision.json").get("postgres", {})
    return int(record.get("restarts", 0))


@contextmanager
def _wal_on_loop(context: Context) -> Iterator[tuple[LoopFilesystem, int]]:
    """pg_wal on its small filesystem, and the supervisor's count of PostgreSQL's restarts
    before the fault."""
    with WalOnLoop(context.stack, ServiceUser.detect()).moved() as fs:
        yield fs, _postgres_restarts(context)


def _fill_pg_wal(context: Context) -> None:
    """pg_wal's filesystem filled; then WAL segments switched (what a busier server's WAL
    volume does within minutes) until PostgreSQL needs a WAL file it cannot create."""
    fs, _ = context.fixture
    filled = fs.fill()
    context.note(f"pg_wal's filesystem filled (a filler of {filled / MIB:.0f} MiB)")
    for switches in range(1, MAX_SWITCHES + 1):
        if context.superuser_sql("SELECT pg_switch_wal()").returncode != 0:
            context.note(f"PostgreSQL went down after {switches} WAL segment switch(es)")
            return
        time.sleep(0.25)
    context.fail(f"PostgreSQL still up after {MAX_SWITCHES} WAL segment switches on a full disk")


def _free(context: Context) -> None:
    fs, _ = context.fixture
    fs.free()


def _postgres_back(context: Context) -> None:
    """What the supervisor did (make status's line), and that the disk alert resolved while
    the small filesystem is still there (its series would vanish with it)."""
    _, before = context.fixture
    record = read_records(context.stack.paths.run / "supervision.json").get("postgres", {})
    context.note(
        f"the supervisor started PostgreSQL {_postgres_restarts(context) - before} time(s), "
        f"its last exit: {record.get('last_exit', '-')}"
    )
    if _postgres_restarts(context) == before:
        context.note("the postmaster never left: its own crash recovery found room")
    _resolves(context, "DiskFull")


def _resolves(context: Context, alert: str) -> None:
    deadline = time.monotonic() + RESOLVE_SECONDS
    while alert in context.alerts_firing():
        if time.monotonic() > deadline:
            context.fail(f"{alert} still firing {RESOLVE_SECONDS:.0f} s after the fault ended")
            return
        time.sleep(1)
    context.note(
        f"{alert} no longer firing (checked {time.time() - context.fault_end:.0f} s after the "
        "fault ended, before the scenario's setup is undone)"
    )


RESOLVE_SECONDS = 120.0


# -- archive-full ----------------------------------------------------------------------------


class _ArchiveRun:
    """archive-full's state: the small filesystem, the last segment archived before it, when
    archiving caught up after the space was freed."""

    def __init__(self, fs: LoopFilesystem, archived_before: str) -> None:
        self.fs = fs
        self.archived_before = archived_before
        self.caught_up: float | None = None
        self.watcher: threading.Thread | None = None


@contextmanager
def _archive_on_loop(context: Context) -> Iterator[_ArchiveRun]:
    archive = ArchiveOnLoop(context.stack, ServiceUser.detect())
    before = _archiver(context)["last_archived_wal"]
    with archive.mounted_over() as fs:
        yield _ArchiveRun(fs, before)
    context.note(f"{len(archive.moved)} file(s) archived on the small filesystem, moved back")
    after = _archiver(context)["last_archived_wal"]
    missing = _archive_gaps(context, before, after)
    if missing:
        context.fail(f"segments missing from the archive: {', '.join(missing[:5])}")
    else:
        context.note(f"every WAL segment from {before} to {after} is in the archive")


def _archiver(context: Context) -> dict[str, str]:
    """pg_stat_archiver, and how many completed segments wait for the archive."""
    done = context.superuser_sql(
        "SELECT json_build_object('last_archived_wal', coalesce(last_archived_wal, ''), "
        "'failed_count', failed_count, 'last_failed_wal', coalesce(last_failed_wal, ''), "
        "'failing', coalesce(last_failed_time > last_archived_time, false), "
        "'ready', (SELECT count(*) FROM pg_ls_archive_statusdir() "
        "WHERE name LIKE '%.ready')) FROM pg_stat_archiver"
    )
    if done.returncode != 0:
        raise RuntimeError(f"reading pg_stat_archiver failed: {done.stderr.strip()}")
    return {k: str(v) for k, v in json.loads(done.stdout).items()}


def _fill_archive(context: Context) -> None:
    """The archive's filesystem filled, and the current WAL segment completed (as
    archive_timeout does within a minute) so that archiving has a segment to fail on."""
    run: _ArchiveRun = context.fixture
    filled = run.fs.fill()
    failed_before = int(_archiver(context)["failed_count"])
    context.superuser_sql("SELECT pg_switch_wal()")
    deadline = time.monotonic() + 30
    while int((state := _archiver(context))["failed_count"]) == failed_before:
        if time.monotonic() > deadline:
            context.fail("archiving did not fail within 30 s of the archive's disk filling")
            return
        time.sleep(0.5)
    context.note(
        f"the archive's filesystem filled (a filler of {filled / MIB:.0f} MiB): archiving "
        f"{state['last_failed_wal']} failed"
    )


def _free_archive(context: Context) -> None:
    """The space freed; then, in the background, when archiving caught up (nothing waiting,
    the newest attempt a success): PostgreSQL retries by itself, nothing is nudged."""
    run: _ArchiveRun = context.fixture
    run.fs.free()
    freed = time.time()

    def watch() -> None:
        deadline = time.monotonic() + ARCHIVE_CATCH_UP_SECONDS
        while time.monotonic() < deadline:
            try:
                state = _archiver(context)
            except RuntimeError:
                state = {"ready": "?", "failing": "?"}
            if state["ready"] == "0" and state["failing"] == "False":
                run.caught_up = time.time() - freed
                return
            time.sleep(0.5)

    run.watcher = threading.Thread(target=watch, daemon=True)
    run.watcher.start()


ARCHIVE_CATCH_UP_SECONDS = 180.0


def _archive_caught_up(context: Context) -> None:
    run: _ArchiveRun = context.fixture
    if run.watcher is not None:
        run.watcher.join(ARCHIVE_CATCH_UP_SECONDS)
    if run.caught_up is None:
        context.fail(f"archiving had not caught up {ARCHIVE_CATCH_UP_SECONDS:.0f} s after")
        return
    context.note(f"archiving caught up {run.caught_up:.1f} s after the space was freed")
    _resolves(context, "WalArchiveFailing")


def _archive_gaps(context: Context, first: str, last: str) -> list[str]:
    """WAL segments after `first` up to `last` (PostgreSQL's names) not in the archive."""
    if not first or not last:
        return []
    names = {p.name.removesuffix(".gz") for p in context.stack.paths.wal_archive.iterdir()}
    timeline = last[:8]
    missing = []
    for segment in range(_segment_number(first) + 1, _segment_number(last) + 1):
        name = f"{timeline}{segment >> 8:08X}{segment & 0xFF:08X}"
        if name not in names:
            missing.append(name)
    return missing


def _segment_number(name: str) -> int:
    """A 16 MB segment's number from its file name (log id * 256 + segment)."""
    return int(name[8:16], 16) * 256 + int(name[16:24], 16)


# -- bot-oom -------------------------------------------------------------------------------


def _bot_in_group(context: Context) -> AbstractContextManager[None]:
    return BotMemoryGroup(context.port_base).entered(context.pid("bot"))


def _oom_kill_bot(context: Context) -> None:
    group = BotMemoryGroup(context.port_base)
    pid = context.pid("bot")
    if pid is None or not group.inside(pid):
        context.fail(f"the bot (pid {pid}) is not in its memory group")
        return
    context.note(group.balloon(pid))


def _bot_restarted_in_group(context: Context) -> None:
    """The supervisor saw an OOM kill (make status's last exit) and started the bot again in
    the same group."""
    group = BotMemoryGroup(context.port_base)
    record = read_records(context.stack.paths.run / "supervision.json").get("bot", {})
    last_exit = str(record.get("last_exit", ""))
    context.note(f"make status: bot restarts {record.get('restarts', 0)}, last exit: {last_exit}")
    if "out of memory" not in last_exit:
        context.fail(f"the bot's last exit is not an OOM kill: {last_exit!r}")
    pid = context.pid("bot")
    if pid is None or not group.inside(pid):
        context.fail(f"the restarted bot (pid {pid}) is not in its memory group")


KILL_NO_ALERT = (
    "the bot's deliveries fail at the connection, counted by no metric of the bot's, and its "
    "scrape target is back well within TargetDown's `for: 1m`"
)
RESTART_NO_ALERT = (
    "down about a second: whether the 2-minute error rates cross their threshold depends on "
    "how many updates were in flight (measured both ways), so none is required"
)
# A database outage of seconds: its failed updates keep the 2-minute error rates up.
DATABASE_ERRORS = ("DatabaseErrorRate", "BotUpdateErrorRate")

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "postgres-kill",
            "kill -9 of PostgreSQL's postmaster; the supervisor starts it (crash recovery)",
            lambda c: _kill(c, "postgres", signal.SIGKILL),
            expected_alerts=DATABASE_ERRORS,
        ),
        Scenario(
            "postgres-restart",
            "an immediate restart of PostgreSQL (pg_ctl stop -m immediate, then start)",
            _postgres_restart,
            why_no_alert=RESTART_NO_ALERT,
        ),
        Scenario(
            "postgres-pause",
            "PostgreSQL stopped (SIGSTOP) for 70 s, past the pool timeout, then resumed",
            lambda c: _kill(c, "postgres", signal.SIGSTOP),
            lambda c: _kill(c, "postgres", signal.SIGCONT),
            fault_seconds=70,
            # A stopped server fails nothing: queries wait, and so do the exporter's scrapes
            # (TargetDown, measured), then everything completes on SIGCONT.
            expected_alerts=("TargetDown", "PostgresDown", *DATABASE_ERRORS),
        ),
        Scenario(
            "postgres-disk-full",
            "pg_wal on a small filesystem, filled under traffic for 75 s, then freed",
            _fill_pg_wal,
            _free,
            fault_seconds=75,
            # DiskFull holds for a minute: the fault outlasts it.
            expected_alerts=("DiskFull",),
            setup=_wal_on_loop,
            after=_postgres_back,
        ),
        Scenario(
            "pgbouncer-kill",
            "kill -9 of PgBouncer; the supervisor starts it",
            lambda c: _kill(c, "pgbouncer", signal.SIGKILL),
            why_no_alert=(
                "back within about a second: too few failed updates to lift the error rates "
                "past their thresholds (measured: none fired)"
            ),
        ),
        Scenario(
            "pgbouncer-pause",
            "PgBouncer PAUSE for 8 s then RESUME (SIGUSR1, SIGUSR2), three times",
            _pause_resume,
            fault_seconds=30,
            # query_wait_timeout is 1 s: a paused pool fails queries rather than slowing them.
            expected_alerts=(
                "SlowQueriesFinished",
                "PgBouncerServerPoolSaturated",
                *DATABASE_ERRORS,
            ),
        ),
        Scenario(
            "pgbouncer-reconnect",
            "PgBouncer's server connections all closed and opened anew (as RECONNECT)",
            _drop_server_connections,
            why_no_alert="no request fails: nothing to alert on",
        ),
        Scenario(
            "bot-kill",
            "kill -9 of the bot; the supervisor starts it, Telegram's redelivery catches up",
            lambda c: _kill(c, "bot", signal.SIGKILL),
            why_no_alert=KILL_NO_ALERT,
        ),
        Scenario(
            "bot-term",
            "SIGTERM to the bot: it finishes its in-flight updates and exits; restarted",
            lambda c: _kill(c, "bot", signal.SIGTERM),
            why_no_alert=KILL_NO_ALERT,
        ),
        Scenario(
            "bot-oom",
            "the bot killed by its memory cgroup (compose's limit) and restarted in it",
            _oom_kill_bot,
            why_no_alert=KILL_NO_ALERT,
            setup=_bot_in_group,
            after=_bot_restarted_in_group,
        ),
        Scenario(
            "net-reset",
            "every connection between the bot and PgBouncer reset, and new ones, for 15 s",
            lambda c: c.proxy.set_mode(Mode.RESET),
            lambda c: c.proxy.set_mode(Mode.PASS),
            fault_seconds=15,
            expected_alerts=DATABASE_ERRORS,
        ),
        Scenario(
            "net-blackhole",
            "the network between the bot and PgBouncer swallows everything for 70 s",
            lambda c: c.proxy.set_mode(Mode.BLACKHOLE),
            lambda c: c.proxy.set_mode(Mode.PASS),
            fault_seconds=70,
            expected_alerts=DATABASE_ERRORS,
        ),
        Scenario(
            "net-latency",
            "200 ms added to every round trip between the bot and PgBouncer for 30 s",
            lambda c: c.proxy.set_mode(Mode.LATENCY, latency=0.1),
            lambda c: c.proxy.set_mode(Mode.PASS),
            fault_seconds=30,
            why_no_alert="slower, not failing: no rule covers added latency under 5 s",
        ),
        Scenario(
            "archive-full",
            "the WAL archive's filesystem full for 40 s, then freed",
            _fill_archive,
            _free_archive,
            fault_seconds=40,
            expected_alerts=("WalArchiveFailing",),
            setup=_archive_on_loop,
            after=_archive_caught_up,
        ),
        Scenario(
            "telegram-5xx",
            "the Bot API answers 502 to every call for 70 s",
            lambda c: _telegram_fault(
                c, {"method": "*", "kind": "server_error", "status": 502, "times": None}
            ),
            lambda c: _telegram_fault(c, None),
            fault_seconds=70,
            expected_alerts=("TelegramApiErrors",),
        ),
        Scenario(
            "telegram-429",
            "a 429 storm: every Bot API call refused with retry_after 3 for 30 s",
            lambda c: _telegram_fault(
                c, {"method": "*", "kind": "retry_after", "retry_after": 3, "times": None}
            ),
            lambda c: _telegram_fault(c, None),
            fault_seconds=30,
            why_no_alert="429 is Telegram's flow control, honoured: not counted as an error",
        ),
        Scenario(
            "telegram-slow",
            "the Bot API answers after 65 s, past the bot's 60 s request timeout, for 30 s",
            lambda c: _telegram_fault(
                c, {"method": "*", "kind": "delay", "delay": 65, "times": None}
            ),
            lambda c: _telegram_fault(c, None),
            fault_seconds=30,
            # The calls made during the fault time out (in doubt): counted as failures.
            expected_alerts=("TelegramApiErrors",),
        ),
        Scenario(
            "admin-outage",
            "PostgreSQL stopped for 70 s while staff use the admin API",
            lambda c: c.stack.stop_postgres(),
            _admin_outage_end,
            fault_seconds=70,
            expected_alerts=("DatabaseErrorRate", "AdminApiErrorRate", "PostgresDown"),
        ),
        Scenario(
            "backup-during-restart",
            "PostgreSQL restarted (immediate) while a base backup streams; the next must succeed",
            _backup_during_restart,
            fault_seconds=20,
            why_no_alert=RESTART_NO_ALERT,
        ),
        Scenario(
            "replicas",
            "two bot processes behind one webhook address; the first killed mid-run",
            lambda c: _kill(c, "bot", signal.SIGKILL),
            why_no_alert="the other replica keeps serving: nothing fails for long",
            replicas=True,
        ),
    )
}
