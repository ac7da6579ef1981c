"""What the WAL archive itself says, read from its files (archive-wal.sh names each one
<WAL file name>.gz): the timeline the live server archives on, the timelines branched off in
it, and when the newest file arrived. The files outlive a PostgreSQL crash, which resets
pg_stat_archiver."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

SEGMENT = re.compile(r"^([0-9A-F]{8})[0-9A-F]{16}\.gz$")
HISTORY = re.compile(r"^([0-9A-F]{8})\.history\.gz$")


@dataclass(frozen=True)
class Newest:
    name: str
    archived_at: float  # Unix time the file was archived (its mtime)


def _entries(archive_dir: Path) -> list[os.DirEntry[str]]:
    try:
        # Hidden names are archive-wal.sh's temporary files, not archived yet.
        return [e for e in os.scandir(archive_dir) if not e.name.startswith(".")]
    except FileNotFoundError:
        return []


def summary(archive_dir: Path) -> tuple[int, Newest | None]:
    """How many files the archive holds and the most recently archived one (any kind:
    segment, history, backup label), in one pass over the directory."""
    entries = _entries(archive_dir)
    newest: Newest | None = None
    for entry in entries:
        try:
            mtime = entry.stat().st_mtime
        except FileNotFoundError:  # removed by retention while we looked
            continue
        if newest is None or (mtime, entry.name) > (newest.archived_at, newest.name):
            newest = Newest(entry.name, mtime)
    return len(entries), newest


def live_timeline(archive_dir: Path) -> int | None:
    """The timeline of the most recently archived full WAL segment: only a server running as
    the live one archives (restores and drills never do), so this is the live cluster's
    timeline as of its last archived segment. None for an empty archive."""
    best: tuple[float, str, int] | None = None
    for entry in _entries(archive_dir):
        match = SEGMENT.match(entry.name)
        if match is None:
            continue
        try:
            key = (entry.stat().st_mtime, entry.name, int(match.group(1), 16))
        except FileNotFoundError:
            continue
        if best is None or key > best:
            best = key
    return best[2] if best else None


def branched_timelines(archive_dir: Path) -> list[int]:
    """Every timeline a promotion created, from the archived history files, in order."""
    found = (HISTORY.match(entry.name) for entry in _entries(archive_dir))
    return sorted(int(match.group(1), 16) for match in found if match)
