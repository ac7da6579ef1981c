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
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from infra.stack_state import StackState
from infra.system import probe
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
    cluster's superuser over its socket (peer authentication)."""
    state = StackState.load(context.stack.paths.state)
    sql = (
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE usename = 'app' AND pid <> pg_backend_pid()"
    )
    done = probe(
        [
            state.psql,
            "--no-psqlrc",
            "-At",
            "-h",
            context.stack.paths.run,
            "-p",
            str(state.ports.postgres),
            "-d",
            "postgres",
            "-c",
            sql,
        ],
        user=ServiceUser.detect(),
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


def _backup_during_restart(context: Context) -> None:
    """A base backup started, then PostgreSQL restarted (immediate) under it."""
    backup = subprocess.Popen(
        [sys.executable, "-m", "services.backup.cli", "backup"],
        env={
            **os.environ,
            **context.environment,
            "BACKUP_SERVICE_STATE_DIR": str(context.stack.paths.root),
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    time.sleep(1)
    _postgres_restart(context)
    output, _ = backup.communicate(timeout=300)
    context.note(
        f"the backup taken across the restart exited {backup.returncode}: "
        f"{output.strip().splitlines()[-1] if output.strip() else ''}"
    )
    # The next one, on the restarted server, must succeed.
    again = subprocess.run(
        [sys.executable, "-m", "services.backup.cli", "backup"],
        env={
            **os.environ,
            **context.environment,
            "BACKUP_SERVICE_STATE_DIR": str(context.stack.paths.root),
        },
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
            "a base backup taken while PostgreSQL restarts (immediate)",
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
# In the order (SCENARIO=all runs them so); the ones not built yet are named here.
NOT_BUILT = {
    "postgres-disk-full": "pg_wal on a small filesystem filled, then freed",
    "bot-oom": "the bot killed by its memory cgroup",
    "archive-full": "the WAL archive's filesystem full, then freed",
}
