"""The local stack's supervisor: what compose's `restart: unless-stopped` does for containers.

One process per stack (started by `infra.stack up`, stopped first by `down`) watches every
component (PostgreSQL, the PgBouncers, the project's services, the monitoring programs) twice
a second. A component whose process is gone while its pidfile is still there died (stopping
one on purpose removes its pidfile first: `down`, `stop_postgres`, PgBouncer's own shutdown):
it is started again the way it was started, at once the first time and then after a backoff
that doubles up to 30 s while it keeps dying, and the death is logged and counted in
run/supervision.json, which `status` shows.

Why it died: the kernel's process-events connector reports every exit with its wait status
(root only); without it the status of a process the supervisor started itself still comes from
waitpid, and otherwise the reason is "unknown".

    python -m infra.supervisor --state-dir DIR     (run by `infra.stack up`)
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from infra.cgroups import born_in_groups_of, groups_of, oom_kills
from infra.system import StackError, write_file

log = logging.getLogger("infra.supervisor")

POLL_SECONDS = 0.5
# Backoff between restarts of a component that keeps dying: 0, then 0.5 s doubling to 30 s
# (a component may cap it lower); forgotten once it has run this long.
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0
STABLE_SECONDS = 30.0


@dataclass
class Component:
    """What the supervisor needs of one component (infra/stack.py builds the list)."""

    name: str
    pid: Callable[[], int | None]
    stopped_on_purpose: Callable[[], bool]
    restart: Callable[[], None]
    backoff_max: float = BACKOFF_MAX


@dataclass
class Record:
    restarts: int = 0
    last_exit: str = ""  # "killed by SIGKILL", "exited with status 1", ...
    last_exit_at: str = ""
    # Not persisted: the backoff.
    dying: int = field(default=0, repr=False)  # deaths in a row (the backoff)
    retry_at: float = field(default=0.0, repr=False)
    running_since: float = field(default=0.0, repr=False)
    corpse: int = field(default=0, repr=False)  # the pid it died with
    oom_kills: int = field(default=0, repr=False)  # its memory group's count, last seen
    down: bool = field(default=False, repr=False)  # died, not yet started again
    restarting: bool = field(default=False, repr=False)

    def shown(self) -> dict[str, Any]:
        return {
            k: v for k, v in asdict(self).items() if k in ("restarts", "last_exit", "last_exit_at")
        }


def read_records(path: Path) -> dict[str, dict[str, Any]]:
    """run/supervision.json: per component, its restarts and its last exit."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def describe(status: int | None) -> str:
    """A wait status in words."""
    if status is None:
        return "exited (reason unknown)"
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with status {os.WEXITSTATUS(status)}"


class ExitWatch:
    """Exit statuses of any process, from the kernel's proc connector (netlink; root only)."""

    NETLINK_CONNECTOR = 11
    CN_IDX_PROC = 1
    PROC_CN_MCAST_LISTEN = 1
    PROC_EVENT_EXIT = 0x80000000

    def __init__(self) -> None:
        self.statuses: dict[int, int] = {}
        self.watched: set[int] = set()
        self._socket: socket.socket | None = None
        try:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, self.NETLINK_CONNECTOR)
            sock.bind((os.getpid(), self.CN_IDX_PROC))
            op = struct.pack("I", self.PROC_CN_MCAST_LISTEN)
            message = struct.pack("IIIIHH", self.CN_IDX_PROC, 1, 0, 0, len(op), 0) + op
            sock.send(struct.pack("IHHII", 16 + len(message), 3, 0, 0, os.getpid()) + message)
            sock.setblocking(False)
            self._socket = sock
        except OSError as error:
            log.info(
                "no process-events connector (%s): exit reasons of processes the "
                "supervisor did not start are unknown",
                error,
            )

    def drain(self) -> None:
        while self._socket is not None:
            try:
                data = self._socket.recv(65536)
            except BlockingIOError:
                return
            except OSError as error:
                if error.errno == errno.ENOBUFS:  # events dropped under load: keep going
                    continue
                raise
            # nlmsghdr (16 bytes), cn_msg (20), proc_event: what, cpu, timestamp, then data.
            if len(data) < 68:
                continue
            (what,) = struct.unpack_from("I", data, 36)
            if what != self.PROC_EVENT_EXIT:
                continue
            pid, tgid, status, _ = struct.unpack_from("IIII", data, 52)
            if pid == tgid and pid in self.watched:
                self.statuses[pid] = status

    def reap(self) -> None:
        """Collect the supervisor's own children (the services it restarted)."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.statuses.setdefault(pid, status)


class Supervisor:
    def __init__(self, components: list[Component], records_file: Path) -> None:
        self.components = components
        self.records_file = records_file
        self.records = {
            c.name: Record(**_known(read_records(records_file).get(c.name))) for c in components
        }
        self.pids: dict[str, int] = {}
        self.cgroups: dict[str, dict[str, str] | None] = {}
        self.exits = ExitWatch()
        self.stopping = False
        self.lock = threading.Lock()

    def run(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "stopping", True))
        log.info("supervising %s", ", ".join(c.name for c in self.components))
        self.tick()
        self._save()  # with its pid: `up` waits for this first look
        while not self.stopping:
            time.sleep(POLL_SECONDS)
            self.tick()
        log.info("supervisor stopped")

    def tick(self) -> None:
        self.exits.drain()
        self.exits.reap()
        now = time.monotonic()
        for component in self.components:
            record = self.records[component.name]
            if self.stopping or record.restarting:
                continue
            pid = component.pid()
            if pid is not None:
                record.down = False  # up, whoever started it (an operator, the stack)
                if self.pids.get(component.name) != pid:
                    self.pids[component.name] = pid
                    self.exits.watched.add(pid)
                    record.running_since = now
                # Every look: a process moved to another group (by an operator, or the chaos
                # harness) is restarted into that one; its OOM kills so far, to tell the next.
                groups = groups_of(pid)
                self.cgroups[component.name] = groups
                record.oom_kills = oom_kills(groups)
                if record.dying and now - record.running_since > STABLE_SECONDS:
                    record.dying = 0
                continue
            last = self.pids.pop(component.name, None)
            if not record.down:
                if component.stopped_on_purpose():
                    if last is not None:
                        log.info("%s: stopped", component.name)
                    continue
                self._died(component, last, now)
            if now >= record.retry_at and not _exiting(record.corpse):
                record.restarting = True
                threading.Thread(target=self._restart, args=(component, record)).start()

    def _died(self, component: Component, pid: int | None, now: float) -> None:
        """pid: its last pid, None when it died before the supervisor saw it."""
        name = component.name
        self.exits.drain()
        self.exits.reap()
        status = self.exits.statuses.pop(pid, None) if pid is not None else None
        self.exits.watched.discard(pid or 0)
        record = self.records[name]
        record.corpse = pid or 0
        record.down = True
        record.last_exit = describe(status)
        if oom_kills(self.cgroups.get(name)) > record.oom_kills:
            record.last_exit += " (out of memory: its memory cgroup's limit)"
        record.last_exit_at = datetime.now(UTC).isoformat(timespec="seconds")
        record.dying += 1
        record.retry_at = now + _backoff(record.dying, component.backoff_max)
        log.warning(
            "%s (pid %s) %s; restarting in %.1f s",
            name,
            pid,
            record.last_exit,
            record.retry_at - now,
        )
        self._save()

    def _restart(self, component: Component, record: Record) -> None:
        """In a thread of its own: a slow start (a bot waiting for its database) holds up
        no other component's restart."""
        try:
            with born_in_groups_of(self.cgroups.get(component.name)):
                component.restart()
        except (StackError, OSError) as error:
            record.dying += 1
            backoff = _backoff(record.dying, component.backoff_max)
            record.retry_at = time.monotonic() + backoff
            log.warning(
                "%s: restart failed (%s); next try in %.1f s", component.name, error, backoff
            )
        else:
            record.restarts += 1
            record.down = False
            log.info("%s: restarted (restart %d)", component.name, record.restarts)
            self._save()
        finally:
            record.restarting = False

    def _save(self) -> None:
        with self.lock:
            data: dict[str, Any] = {"supervisor": {"pid": os.getpid()}}
            data |= {name: record.shown() for name, record in self.records.items()}
            write_file(self.records_file, json.dumps(data, indent=2) + "\n", 0o644)


def _exiting(pid: int) -> bool:
    """Still on its way out: a killed process holds its port and pidfile until it has
    exited (a zombie, which its parent may never reap, holds neither)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def _backoff(deaths: int, cap: float = BACKOFF_MAX) -> float:
    """At once after the first death, then 0.5 s doubling up to the cap."""
    return 0.0 if deaths <= 1 else min(cap, BACKOFF_FIRST * 2 ** (deaths - 2))


def _known(data: dict[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (data or {}).items() if k in ("restarts", "last_exit", "last_exit_at")}


def main(argv: list[str] | None = None) -> int:
    from infra.stack import LocalStack, _port_base  # the stack imports this module

    parser = argparse.ArgumentParser(prog="python -m infra.supervisor", description=__doc__)
    parser.add_argument("--state-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(message)s",
        stream=sys.stdout,
    )
    stack = LocalStack(args.state_dir, _port_base(args.state_dir, None))
    supervisor = Supervisor(stack.supervised(), stack.paths.run / "supervision.json")
    supervisor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
