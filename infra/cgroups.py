"""The local stack under compose.yaml's memory budget: each service in a cgroup v1 memory group
of its own whose limit is the one compose.yaml gives that service, all under a parent group
of 2 GB, so a service that outgrows its limit is OOM-killed here as it would be on the VPS.

Processes are started inside their group (`entered`: the starting process joins the group
for the moment it forks, so the child is born there): memory a process used before a move
would stay charged to its old group. A cpuacct group of the same name counts CPU time.

With `cpus`, a cpuset group confines the stack's services to the first `cpus` CPUs, as on a
VPS of that many cores, and a second one holds what is not on the VPS (the Telegram stand-in,
and the load generator, `outside`) on the others.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from infra.system import StackError

MEMORY_ROOT = Path("/sys/fs/cgroup/memory")
CPUACCT_ROOT = Path("/sys/fs/cgroup/cpuacct")
CPUSET_ROOT = Path("/sys/fs/cgroup/cpuset")
COMPOSE_FILE = Path(__file__).resolve().parent.parent / "compose.yaml"
BUDGET_BYTES = 2 * 1024**3
UNITS = {"k": 1024, "m": 1024**2, "g": 1024**3}
# The local stack's programs by the compose service they stand for. Both local PgBouncers
# (1.24, and Debian's 1.18 for the tests) share PgBouncer's group. The Telegram Bot API
# stand-in is Telegram, and Alertmanager stands in for Grafana's alerting: outside the budget.
LOCAL_TO_COMPOSE: dict[str, str] = {
    "postgres": "postgres",
    "pgbouncer": "pgbouncer",
    "pgbouncer-legacy": "pgbouncer",
    "bot": "bot",
    "admin-api": "admin-api",
    "backup": "backup",
    "prometheus": "prometheus",
    "postgres-exporter": "postgres-exporter",
    "pgbouncer-exporter": "pgbouncer-exporter",
    "node-exporter": "node-exporter",
}
# The compose services that have a group of their own here.
GROUPS = tuple(sorted(set(LOCAL_TO_COMPOSE.values())))


def parse_memory(text: str) -> int:
    """A compose memory size ("512M", "1g", "300000") in bytes."""
    value = str(text).strip().lower().rstrip("b")
    if value and value[-1] in UNITS:
        return int(float(value[:-1]) * UNITS[value[-1]])
    return int(value)


# Profiles of services meant for another machine (the s3 profile's object store: an offsite
# copy on the VPS it protects is no offsite copy): not in this VPS's memory budget.
OFF_VPS_PROFILES = {"s3"}


def compose_limits(compose_file: Path = COMPOSE_FILE) -> dict[str, int]:
    """Every compose service's memory limit in bytes, as compose.yaml gives it (but those
    meant for another machine)."""
    services = yaml.safe_load(compose_file.read_text())["services"]
    return {
        name: parse_memory(service["deploy"]["resources"]["limits"]["memory"])
        for name, service in services.items()
        if not OFF_VPS_PROFILES & set(service.get("profiles", []))
    }


@dataclass(frozen=True)
class GroupSample:
    """One reading of a group: memory in bytes, CPU in seconds since the group was made."""

    usage: int
    working_set: int  # usage minus inactive file cache: what the kernel cannot just drop
    rss: int
    shmem: int
    cpu_seconds: float
    failcnt: int  # times the limit refused a charge
    oom_kills: int


@dataclass(frozen=True)
class ProbeResult:
    killed: bool
    detail: str


class MemoryCgroups:
    """The groups of one stack: <root>/<compose service>, limits from compose.yaml."""

    def __init__(
        self,
        name: str,
        limits: Mapping[str, int],
        budget: int = BUDGET_BYTES,
        cpus: int | None = None,
    ) -> None:
        self.name = name
        self.limits = dict(limits)
        self.budget = budget
        # CPUs the stack's services are confined to (None: all of them).
        self.cpus = cpus

    @staticmethod
    def unavailable() -> str | None:
        """Why groups cannot be made here (None when they can)."""
        if os.geteuid() != 0:
            return "not root: cgroups are writable by root only"
        if not (MEMORY_ROOT / "memory.limit_in_bytes").exists():
            return f"no cgroup v1 memory controller at {MEMORY_ROOT}"
        if not os.access(MEMORY_ROOT, os.W_OK):
            return f"{MEMORY_ROOT} is not writable"
        return None

    def memory_dir(self, group: str | None = None) -> Path:
        return MEMORY_ROOT / self.name / group if group else MEMORY_ROOT / self.name

    def cpu_dir(self, group: str | None = None) -> Path:
        return CPUACCT_ROOT / self.name / group if group else CPUACCT_ROOT / self.name

    def cpuset_dir(self, *, outside: bool = False) -> Path:
        return CPUSET_ROOT / (f"{self.name}-outside" if outside else self.name)

    def create(self) -> None:
        """The parent group (the budget) and one group per service with its limit; with
        `cpus`, the stack's cpuset and the one outside it."""
        self._make(self.memory_dir(), self.budget)
        for group, limit in self.limits.items():
            self._make(self.memory_dir(group), limit)
        if self.cpus is not None:
            available = _cpu_list(_read(CPUSET_ROOT / "cpuset.effective_cpus"))
            if not 0 < self.cpus < len(available):
                raise StackError(
                    f"cannot confine the stack to {self.cpus} of {len(available)} CPUs: one at "
                    "least for the stack and one for what is not on the VPS"
                )
            mems = _read(CPUSET_ROOT / "cpuset.effective_mems")
            for outside, cpus in ((False, available[: self.cpus]), (True, available[self.cpus :])):
                path = self.cpuset_dir(outside=outside)
                path.mkdir(exist_ok=True)
                # A new cpuset has no CPUs and no memory nodes: both before a process joins.
                _write(path / "cpuset.cpus", ",".join(str(cpu) for cpu in cpus))
                _write(path / "cpuset.mems", mems)

    def _make(self, path: Path, limit: int) -> None:
        path.mkdir(exist_ok=True)
        # A group's limit covers its children's usage (always so on recent kernels).
        _write(path / "memory.use_hierarchy", "1", missing_ok=True)
        _write(path / "memory.limit_in_bytes", str(limit))
        # No swap either: a group at its limit is OOM-killed, not paged out.
        _write(path / "memory.memsw.limit_in_bytes", str(limit), missing_ok=True)
        cpu = CPUACCT_ROOT / path.relative_to(MEMORY_ROOT)
        if CPUACCT_ROOT.is_dir():
            cpu.mkdir(exist_ok=True)

    @contextmanager
    def entered(self, local_name: str) -> Iterator[None]:
        """Within the block, processes this one starts are born in the group of the compose
        service `local_name` stands for (outside any group when it stands for none)."""
        group = LOCAL_TO_COMPOSE.get(local_name)
        if group is None:
            with self.outside():
                yield
            return
        groups = [self.memory_dir(group)]
        if self.cpu_dir(group).is_dir():
            groups.append(self.cpu_dir(group))
        if self.cpus is not None:
            groups.append(self.cpuset_dir())
        with _inside(*groups):
            yield

    @contextmanager
    def outside(self) -> Iterator[None]:
        """Within the block, processes this one starts run on the CPUs the stack does not
        use (with `cpus`; anywhere without): Telegram's stand-in, the load generator."""
        if self.cpus is None:
            yield
            return
        with _inside(self.cpuset_dir(outside=True)):
            yield

    def sample(self, group: str | None = None) -> GroupSample:
        memory = self.memory_dir(group)
        stat = _stat(memory / "memory.stat")
        usage = int(_read(memory / "memory.usage_in_bytes"))
        inactive = stat.get("total_inactive_file", stat.get("inactive_file", 0))
        cpu_file = self.cpu_dir(group) / "cpuacct.usage"
        cpu = int(_read(cpu_file)) / 1e9 if cpu_file.exists() else 0.0
        oom = _stat(memory / "memory.oom_control").get("oom_kill", 0)
        return GroupSample(
            usage=usage,
            working_set=max(0, usage - inactive),
            rss=stat.get("total_rss", stat.get("rss", 0)),
            shmem=stat.get("total_shmem", stat.get("shmem", 0)),
            cpu_seconds=cpu,
            failcnt=_failures(memory),
            oom_kills=oom,
        )

    def processes(self, group: str) -> list[int]:
        text = _read(self.memory_dir(group) / "cgroup.procs")
        return [int(pid) for pid in text.split()]

    def oom_probe(self, limit: int = 32 * 1024**2) -> ProbeResult:
        """Start a process in a tiny group of its own that allocates past the limit: the
        limit is enforced if the kernel OOM-kills it (and the group counts the kill)."""
        probe = self.memory_dir("oom-probe")
        self._make(probe, limit)
        allocate = f"blocks = [bytearray(1 << 20) for _ in range({4 * limit // 2**20})]"
        try:
            with _inside(probe):
                child = subprocess.Popen([sys.executable, "-c", allocate])
            child.wait(timeout=60)
            kills = _stat(probe / "memory.oom_control").get("oom_kill", 0)
            killed = child.returncode == -signal.SIGKILL and kills > 0
            detail = (
                f"a process allocating {4 * limit // 2**20} MiB under a {limit // 2**20} MiB "
                f"limit exited with {child.returncode} (SIGKILL is -9); the group counted "
                f"{kills} OOM kill(s)"
            )
            return ProbeResult(killed=killed, detail=detail)
        finally:
            # Its cpuacct twin (_make made one) too, or the parent group could not go either.
            _remove(probe)
            _remove(self.cpu_dir("oom-probe"))

    def remove(self) -> None:
        """Remove the groups once their processes are gone (a busy group is left)."""
        for group in self.limits:
            _remove(self.memory_dir(group))
            _remove(self.cpu_dir(group))
        _remove(self.memory_dir())
        _remove(self.cpu_dir())
        for outside in (False, True):
            _remove(self.cpuset_dir(outside=outside))


def _failures(memory: Path) -> int:
    """Charges the limit refused: against memory, or memory and swap (set to the same)."""
    total = int(_read(memory / "memory.failcnt"))
    memsw = memory / "memory.memsw.failcnt"
    return total + (int(_read(memsw)) if memsw.exists() else 0)


@contextmanager
def _inside(*groups: Path) -> Iterator[None]:
    """This process in the given groups (each under one controller's root) for the block
    (children forked meanwhile are born there), then back in its own."""
    homes = []
    for group in groups:
        root = next(r for r in (MEMORY_ROOT, CPUACCT_ROOT, CPUSET_ROOT) if r in group.parents)
        homes.append((root, _own_group(root.name)))
        _join(group)
    try:
        yield
    finally:
        for root, home in homes:
            _join(root / home.lstrip("/"))


def _cpu_list(text: str) -> list[int]:
    """A cpuset list ("0-1,4") as CPU numbers."""
    cpus: list[int] = []
    for part in text.split(","):
        first, _, last = part.partition("-")
        cpus += range(int(first), int(last or first) + 1)
    return cpus


def groups_of(pid: int) -> dict[str, str] | None:
    """The memory, cpuacct and cpuset groups of a process (paths under their roots, by
    controller), None when it is in no memory group of its own or cannot be read."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None
    found: dict[str, str] = {}
    for line in lines:
        _, controllers, path = line.split(":", 2)
        for controller in ("memory", "cpuacct", "cpuset"):
            if controller in controllers.split(","):
                found[controller] = path
    if "memory" not in found or found["memory"] == _own_group("memory"):
        return None
    return found


def oom_kills(groups: dict[str, str] | None) -> int:
    """How many processes the OOM killer has killed in the memory group of groups_of (0
    outside one, or when the kernel does not count them)."""
    if not groups or "memory" not in groups:
        return 0
    control = MEMORY_ROOT / groups["memory"].lstrip("/") / "memory.oom_control"
    try:
        return _stat(control).get("oom_kill", 0)
    except OSError:
        return 0


@contextmanager
def born_in_groups_of(groups: dict[str, str] | None) -> Iterator[None]:
    """Within the block, processes this one starts are born in those groups (groups_of)."""
    roots = {"memory": MEMORY_ROOT, "cpuacct": CPUACCT_ROOT, "cpuset": CPUSET_ROOT}
    paths = [roots[c] / path.lstrip("/") for c, path in (groups or {}).items() if path != "/"]
    with _inside(*(path for path in paths if path.is_dir())):
        yield


def _own_group(controller: str) -> str:
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return path
    raise StackError(f"this process is in no {controller} cgroup")


def _join(group: Path) -> None:
    _write(group / "cgroup.procs", str(os.getpid()))


def _read(path: Path) -> str:
    return path.read_text().strip()


def _write(path: Path, value: str, *, missing_ok: bool = False) -> None:
    try:
        path.write_text(value)
    except FileNotFoundError:
        if not missing_ok:
            raise StackError(f"cannot write {path}: no such file") from None
    except OSError as error:
        if missing_ok and path.name == "memory.use_hierarchy":
            return  # fixed at 1 once a group has children, or by the kernel
        raise StackError(f"cannot write {value} to {path}: {error.strerror}") from None


def _stat(path: Path) -> dict[str, int]:
    values = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition(" ")
        if re.fullmatch(r"-?\d+", value.strip()):
            values[key] = int(value)
    return values


def _remove(path: Path) -> None:
    # Emptied groups may take a moment to let go of their last pages' accounting.
    for _ in range(20):
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.1)
