"""Supervision in the local stack (infra/supervisor.py), as compose's `restart:
unless-stopped`: a service that dies is started again, and `status` says how often and why."""

from __future__ import annotations

import os
import signal
import time
import urllib.request

from infra.app_services import APP_SERVICES, AppServiceProcess
from infra.postgres_server import PostgresServer
from infra.stack import LocalStack
from infra.stack_state import Ports, StackState
from infra.supervisor import read_records
from infra.system import probe
from services.core.os_user import ServiceUser

RESTART_TIMEOUT = 120.0  # a Python service's imports alone take half a minute on a busy machine


def _admin_api(stack: LocalStack) -> AppServiceProcess:
    service = next(s for s in APP_SERVICES if s.name == "admin-api")
    return AppServiceProcess(stack.paths, Ports(stack.port_base), service)


def test_a_killed_service_comes_back_and_status_says_why(stack: LocalStack) -> None:
    process = _admin_api(stack)
    before = read_records(stack.paths.run / "supervision.json").get("admin-api", {})
    pid = process.pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    # The supervisor records the restart once the new process answers its health check: a
    # moment after a look from here may see it healthy.
    restarted = f"restarts {before.get('restarts', 0) + 1}, last exit: killed by SIGKILL"
    deadline = time.monotonic() + RESTART_TIMEOUT
    while True:
        status = {c.name: c for c in stack.status()}["admin-api"]
        new = process.pid()
        if new not in (None, pid) and process.process.healthy() and restarted in status.detail:
            break
        assert time.monotonic() < deadline, f"admin-api was not restarted: {status}"
        time.sleep(0.2)
    with urllib.request.urlopen(process.url + "/health/live", timeout=5) as reply:
        assert reply.status == 200
    assert status.running
    assert f"pid {new}" in status.detail
    supervisor = {c.name: c for c in stack.status()}["supervisor"]
    assert supervisor.running


def test_a_service_stopped_on_purpose_stays_stopped(stack: LocalStack) -> None:
    process = _admin_api(stack)
    process.stop()
    try:
        time.sleep(3)  # six looks of the supervisor: nothing may start it meanwhile
        assert process.pid() is None
        assert not {c.name: c for c in stack.status()}["admin-api"].running
    finally:
        process.process.relaunch()
    assert process.pid() is not None


def test_a_postgres_that_shut_itself_down_comes_back(stack: LocalStack) -> None:
    """A postmaster that exits on its own, cleanly (its startup failed, as on a full pg_wal:
    "shutting down due to startup process failure"), removes its pidfile as a stop does; only
    the stack's own stop is on purpose, so the supervisor starts this one again."""
    state = StackState.load(stack.paths.state)
    postgres = PostgresServer(stack.paths, ServiceUser.detect(), state)
    before = read_records(stack.paths.run / "supervision.json").get("postgres", {})
    pid = postgres.pid()
    assert pid is not None
    probe(
        [state.pg_bindir / "pg_ctl", "stop", "-w", "-s", "-m", "fast", "-D", stack.paths.pgdata],
        user=ServiceUser.detect(),
    )
    # Its exit status (0) when the kernel's process events reported it, "reason unknown" if not;
    # recorded once pg_ctl start returned, a moment after the new postmaster is there.
    restarted = f"restarts {before.get('restarts', 0) + 1}, last exit: exited"
    deadline = time.monotonic() + RESTART_TIMEOUT
    while True:
        status = {c.name: c for c in stack.status()}["postgres"]
        new = postgres.pid()
        if new not in (None, pid) and restarted in status.detail:
            break
        assert time.monotonic() < deadline, f"not started again by the supervisor: {status}"
        time.sleep(0.2)
    assert status.running and f"pid {new}" in status.detail
