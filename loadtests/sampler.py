"""Memory and CPU of each service, sampled every second during a load run: from its memory
cgroup when the budget is enforced, else (no writable cgroups) from its processes in /proc,
measured but not enforced."""

from __future__ import annotations

import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

from infra.cgroups import GROUPS, LOCAL_TO_COMPOSE, GroupSample, MemoryCgroups
from infra.stack_state import Layout
from loadtests.procfs import cpu_seconds, descendants


class Source(Protocol):
    def sample(self, group: str) -> GroupSample: ...


class CgroupSource:
    def __init__(self, cgroups: MemoryCgroups) -> None:
        self.cgroups = cgroups

    def sample(self, group: str) -> GroupSample:
        return self.cgroups.sample(group)


class ProcessSource:
    """Each service's process tree, found from the stack's pidfiles: RSS stands in for the
    working set (page cache is not counted per process)."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout

    def sample(self, group: str) -> GroupSample:
        rss = shmem = 0
        cpu = 0.0
        for pid in descendants(self._roots(group)):
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
            rss += _kib(fields.get("VmRSS"))
            shmem += _kib(fields.get("RssShmem"))
            cpu += cpu_seconds(pid)
        return GroupSample(rss, rss, rss, shmem, cpu, 0, 0)

    def _roots(self, group: str) -> list[int]:
        if group == "postgres":
            files = [self.layout.pgdata / "postmaster.pid"]
        else:
            locals_ = [name for name, compose in LOCAL_TO_COMPOSE.items() if compose == group]
            files = [self.layout.run / f"{name}.pid" for name in locals_]
        roots = []
        for file in files:
            try:
                roots.append(int(file.read_text().split()[0]))
            except (OSError, ValueError, IndexError):
                continue
        return roots


def _kib(value: str | None) -> int:
    return int(value.split()[0]) * 1024 if value else 0


class Sampler(threading.Thread):
    """Samples every `interval` seconds until stopped; `samples` holds what it read."""

    def __init__(self, source: Source, total: MemoryCgroups | None, interval: float = 1.0) -> None:
        super().__init__(name="memory-sampler", daemon=True)
        self.source = source
        self.total = total
        self.interval = interval
        self.samples: list[dict[str, Any]] = []
        self._stopping = threading.Event()

    def run(self) -> None:
        while not self._stopping.is_set():
            at = time.time()
            groups = {}
            for group in GROUPS:
                try:
                    groups[group] = asdict(self.source.sample(group))
                except OSError:
                    continue
            sample: dict[str, Any] = {"at": at, "groups": groups}
            if self.total is not None:
                sample["total"] = asdict(self.total.sample())
            self.samples.append(sample)
            self._stopping.wait(max(0.0, self.interval - (time.time() - at)))

    def stop(self) -> None:
        self._stopping.set()
        self.join(timeout=5)

    def latest(self) -> dict[str, Any] | None:
        return self.samples[-1] if self.samples else None
