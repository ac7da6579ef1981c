"""What /proc says of processes: their parents and their CPU time (benchmarks and the load
runs' fallback when cgroups cannot be written)."""

from __future__ import annotations

import os
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int | str) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name (which may hold spaces)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User and system CPU of a process so far; 0 once it is gone."""
    try:
        fields = _stat(pid)
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def parents() -> dict[int, int]:
    """Every process's parent, by pid."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                found[int(entry.name)] = int(_stat(entry.name)[1])
            except OSError:
                continue
    return found


def children(parent: int) -> list[int]:
    return [pid for pid, of in parents().items() if of == parent]


def descendants(roots: list[int]) -> list[int]:
    """The roots and every process below them."""
    tree = parents()
    found = set(roots)
    while True:
        more = {pid for pid, parent in tree.items() if parent in found} - found
        if not more:
            return sorted(found)
        found |= more
