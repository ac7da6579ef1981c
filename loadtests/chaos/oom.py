"""`bot-oom`: the bot killed by its memory cgroup, as on the VPS when its container reaches
compose.yaml's limit.

The bot is moved, running, into a cgroup v1 memory group of its own with compose.yaml's
limit for it (infra/cgroups.py; its pages charged there with it); the supervisor sees the
move and restarts it into that group. The fault: a balloon process joins the group and
allocates until the group is at its limit, playing a leak in the bot's container; the kernel's
OOM killer then picks a victim in the group: the bot, marked its first choice (oom_score_adj
1000, as the only process of its container would be; this machine's root lacks
CAP_SYS_RESOURCE, which making the balloon unkillable instead would take), SIGKILLed as a real
OOM kill is. The balloon stops at the bot's death and exits, giving the memory back, and the
supervisor starts the bot again in the same group. Afterwards the bot is moved back where it
was and the group removed."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from infra.cgroups import (
    BUDGET_BYTES,
    MEMORY_ROOT,
    MemoryCgroups,
    born_in_groups_of,
    compose_limits,
    groups_of,
)
from infra.system import StackError

BALLOON_TIMEOUT_SECONDS = 60.0
# The balloon allocates 1 MiB at a time (bytearray zero-fills, so every page is touched and
# charged) until the group's OOM killer has killed something (argv[1]: memory.oom_control,
# which counts the kill before the victim's memory is freed: waiting for the bot to be gone
# would let the balloon push on and be killed too), then exits.
BALLOON = """
import sys
def kills():
    with open(sys.argv[1]) as f:
        return int(dict(line.split() for line in f)["oom_kill"])
before, most = kills(), int(sys.argv[2])
held = []
while kills() == before and len(held) < most:
    held.append(bytearray(1 << 20))
print(len(held))
"""


class BotMemoryGroup:
    """The bot's memory group in the chaos stack: `botstack-chaos-<port base>/bot`."""

    def __init__(self, port_base: int) -> None:
        self.limit = compose_limits()["bot"]
        self.cgroups = MemoryCgroups(
            f"botstack-chaos-{port_base}", {"bot": self.limit}, BUDGET_BYTES
        )
        self.group = self.cgroups.memory_dir("bot")

    @contextmanager
    def entered(self, bot_pid: int | None) -> Iterator[None]:
        """The running bot moved into the group for the block, then out and the group gone."""
        why_not = MemoryCgroups.unavailable()
        if why_not is not None:
            raise StackError(f"bot-oom needs a memory cgroup: {why_not}")
        if bot_pid is None:
            raise StackError("the bot is not running")
        home = MEMORY_ROOT / _memory_group(bot_pid).lstrip("/")
        self.cgroups.create()
        try:
            # Its pages move with it (cgroup v1; where the kernel no longer moves them they
            # stay charged outside, and the balloon fills the whole limit), then no more
            # moves: the harness joins the group for a moment to start the balloon.
            _move_charges(self.group, True)
            (self.group / "cgroup.procs").write_text(str(bot_pid))
            _move_charges(self.group, False)
            yield
        finally:
            self.leave(home)

    def leave(self, home: Path = MEMORY_ROOT) -> None:
        """Every process of the group moved to `home` (where the bot was), the groups
        removed; nothing to do when there are none."""
        if self.group.is_dir():
            for pid in self.cgroups.processes("bot"):
                with suppress(OSError):  # gone meanwhile
                    (home / "cgroup.procs").write_text(str(pid))
        self.cgroups.remove()

    def inside(self, pid: int) -> bool:
        groups = groups_of(pid)
        return groups is not None and groups.get("memory") == "/" + str(
            self.group.relative_to(MEMORY_ROOT)
        )

    def oom_kills(self) -> int:
        return self.cgroups.sample("bot").oom_kills

    def balloon(self, bot_pid: int) -> str:
        """A balloon in the group that grows until the kernel has killed the bot; what it
        did, in words."""
        before = self.oom_kills()
        # The OOM killer's first choice in the group, as a container's only process is.
        Path(f"/proc/{bot_pid}/oom_score_adj").write_text("1000")
        most = 2 * self.limit // 2**20  # never more than twice the limit, whatever happens
        started = time.monotonic()
        with born_in_groups_of({"memory": "/" + str(self.group.relative_to(MEMORY_ROOT))}):
            balloon = subprocess.Popen(
                [sys.executable, "-c", BALLOON, str(self.group / "memory.oom_control"), str(most)],
                stdout=subprocess.PIPE,
                text=True,
            )
        try:
            output, _ = balloon.communicate(timeout=BALLOON_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            balloon.kill()
            balloon.communicate()
            raise StackError("the balloon did not get the bot killed within a minute") from None
        kills = self.oom_kills() - before
        if kills == 0 or _alive(bot_pid):
            raise StackError(
                f"the bot was not OOM-killed (the balloon: {output.strip() or 'failed'}, "
                f"exit {balloon.returncode}; the group counted {kills} OOM kill(s))"
            )
        return (
            f"a balloon in the bot's group (limit {self.limit // 2**20} MiB) took "
            f"{output.strip() or '?'} MiB in {time.monotonic() - started:.1f} s; the group "
            f"counted {kills} OOM kill(s)"
        )


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _memory_group(pid: int) -> str:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return path
    raise StackError(f"process {pid} is in no memory cgroup")


def _move_charges(group: Path, on: bool) -> None:
    with suppress(OSError):  # not supported by this kernel
        (group / "memory.move_charge_at_immigrate").write_text("3" if on else "0")
