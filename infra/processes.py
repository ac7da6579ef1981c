"""Long-running processes the local stack starts itself (the project's services, the
monitoring programs): started in their own session as an unprivileged account, their output
appended to a log only its owner reads, considered up once their health URL answers, and
recognised later by a pidfile plus a marker in their command line (a reused pid is not
theirs). A port another program holds is refused by name before anything starts."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.service_runtime import REPO_ROOT, Account
from infra.stack_state import HOST
from infra.system import StackError, shown, write_file

log = logging.getLogger("infra.stack")

READY_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 15.0

# Where a process is born: a block within which the processes started join the group named
# for the component (infra/cgroups.py: its memory cgroup under the budget), or nowhere special.
Placement = Callable[[str], AbstractContextManager[None]]


def unplaced(name: str) -> AbstractContextManager[None]:
    return nullcontext()


@dataclass(frozen=True)
class Supervised:
    name: str  # label, and the stem of its pid and log files
    marker: str  # a word of its command line (module or program path)
    ports: tuple[int, ...]  # the ports it listens on
    health_url: str  # answers 200 once it is up
    pidfile: Path
    logfile: Path
    program: str = ""  # what `status` calls it

    def pid(self) -> int | None:
        """The pid of this process; None for a stale pidfile or a reused pid."""
        try:
            pid = int(self.pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if _runs(pid, self.marker) else None

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.health_url, timeout=2) as reply:
                return bool(reply.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def start(
        self,
        argv: Sequence[str | Path],
        env: Mapping[str, str],
        account: Account | None,
        cwd: Path = REPO_ROOT,
        placement: Placement = unplaced,
    ) -> None:
        """Start it unless it already runs healthy; wait until its health URL answers."""
        if self.pid() is not None and self.healthy():
            log.info("%s: running", self.name)
            return
        self.stop()
        for port in self.ports:
            if (holder := port_holder(port)) is not None:
                raise StackError(
                    f"{self.name}: {HOST}:{port} is held by another program ({holder}); stop "
                    "it or choose another --port-base"
                )
        log.info("%s: starting on %s ...", self.name, ", ".join(map(str, self.ports)))
        env = dict(env)
        if account is not None:
            env["HOME"] = account.home  # root's is unreadable to it; libraries look there
        launch = {
            "argv": [str(part) for part in argv],
            "env": env,
            "cwd": str(cwd),
            "uid": account.uid if account else None,
            "gid": account.gid if account else None,
        }
        # How it was started, for the supervisor to start it again the same way (infra/
        # supervisor.py); only root reads it, since the environment holds secrets.
        write_file(self.launchfile, json.dumps(launch) + "\n", 0o600)
        with placement(self.name):
            self._spawn(launch)

    def start_like(self, launch: dict[str, Any]) -> None:
        """Start it as another was started (launch: that one's launch file, edited)."""
        write_file(self.launchfile, json.dumps(launch) + "\n", 0o600)
        self._spawn(launch)

    def relaunch(self) -> None:
        """Start it again as it was last started (the supervisor's restart)."""
        self._spawn(json.loads(self.launchfile.read_text()))

    @property
    def launchfile(self) -> Path:
        return self.pidfile.with_suffix(".launch.json")

    def _spawn(self, launch: dict[str, Any]) -> None:
        # The log is opened here and handed over: the process's user need not write to it.
        fd = os.open(self.logfile, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.fchmod(fd, 0o600)
        uid, gid = launch["uid"], launch["gid"]
        try:
            process = subprocess.Popen(
                launch["argv"],
                cwd=launch["cwd"],
                env=launch["env"],
                stdin=subprocess.DEVNULL,
                stdout=fd,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # not killed with the terminal that ran `make up`
                user=uid,
                group=gid,
                extra_groups=[] if uid is not None else None,
            )
        finally:
            os.close(fd)
        self.pidfile.write_text(f"{process.pid}\n")
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while process.poll() is not None or not self.healthy():
            if process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise StackError(f"{self.name} failed to start; see {shown(self.logfile)}")
            time.sleep(0.2)

    def stop(self) -> None:
        """Stop it on purpose: its pidfile goes first, which tells the supervisor that this
        exit is no crash (compose's `unless-stopped`)."""
        pid = self.pid()
        self.pidfile.unlink(missing_ok=True)
        if pid is None:
            return
        log.info("%s: stopping ...", self.name)
        os.kill(pid, signal.SIGTERM)  # each finishes its in-flight work on SIGTERM
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        while _runs(pid, self.marker):
            if time.monotonic() > deadline:
                log.warning("%s: still running after SIGTERM, killing it", self.name)
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)

    def stopped_on_purpose(self) -> bool:
        return not self.pidfile.exists()


def _runs(pid: int, marker: str) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return marker.encode() in cmdline


def port_holder(port: int) -> str | None:
    """Who listens on the TCP port: "pid N (command)", "an unknown process" when /proc does
    not say, or None when the port is free."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            # local address "0100007F:6B8A", state 0A = LISTEN, inode in field 9
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if any(os.readlink(fd) in inodes for fd in (proc / "fd").iterdir()):
                command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
                return f"pid {proc.name} ({command[:80]})"
        except OSError:
            continue
    return "an unknown process"
