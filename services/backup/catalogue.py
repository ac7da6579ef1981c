"""The catalogue of base backups: one JSON file beside each backup's directory on the backup
volume, so it survives the loss of the database (backup_runs rows are the shared, queryable
history; these files are what a restore trusts)."""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from .errors import BackupError

# backup_label: "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)"
START_WAL = re.compile(r"^START WAL LOCATION: \S+ \(file ([0-9A-F]{24})\)$", re.MULTILINE)
START_TIMELINE = re.compile(r"^START TIMELINE: (\d+)$", re.MULTILINE)


class ClusterMismatch(BackupError):
    """The catalogue holds backups of another cluster than the one being backed up."""


class Verification(StrEnum):
    VERIFIED = "verified"
    CORRUPT = "corrupt"


@dataclass(frozen=True)
class BaseBackup:
    label: str
    system_identifier: str  # of the cluster backed up: restores never mix clusters
    started_at: datetime
    finished_at: datetime  # after pg_basebackup returned: the backup is consistent from here
    timeline: int
    start_wal: str  # the oldest WAL segment a restore of this backup needs
    size_bytes: int
    duration_seconds: float  # pg_basebackup and pg_verifybackup
    verify_seconds: float  # pg_verifybackup alone
    verification: Verification

    def to_json(self) -> str:
        data: dict[str, Any] = asdict(self)
        data["started_at"] = self.started_at.isoformat()
        data["finished_at"] = self.finished_at.isoformat()
        return json.dumps(data, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> BaseBackup:
        data = json.loads(text)
        return cls(
            label=str(data["label"]),
            system_identifier=str(data["system_identifier"]),
            started_at=datetime.fromisoformat(data["started_at"]),
            finished_at=datetime.fromisoformat(data["finished_at"]),
            timeline=int(data["timeline"]),
            start_wal=str(data["start_wal"]),
            size_bytes=int(data["size_bytes"]),
            duration_seconds=float(data["duration_seconds"]),
            verify_seconds=float(data["verify_seconds"]),
            verification=Verification(data["verification"]),
        )


def new_label(now: datetime) -> str:
    """base-20261122T041801.123Z: milliseconds, since a small database backs up in under one
    second and two backups must never share a name."""
    moment = now.astimezone(UTC)
    return moment.strftime("base-%Y%m%dT%H%M%S") + f".{moment.microsecond // 1000:03d}Z"


def read_backup_label(data_dir: Path) -> tuple[int, str]:
    """The timeline and first WAL segment of a base backup, from its backup_label."""
    text = (data_dir / "backup_label").read_text()
    wal, timeline = START_WAL.search(text), START_TIMELINE.search(text)
    if wal is None or timeline is None:
        raise ValueError(f"{data_dir / 'backup_label'} has no start WAL location or timeline")
    return int(timeline.group(1)), wal.group(1)


def directory_size(path: Path) -> int:
    return sum(entry.stat().st_size for entry in path.rglob("*") if entry.is_file())


class Catalogue:
    """<backup dir>/base/<label>/ (the data directory pg_basebackup wrote, with its manifest)
    and <backup dir>/base/<label>.json (what we know about it)."""

    def __init__(self, backup_dir: Path) -> None:
        self.root = backup_dir / "base"

    def path(self, label: str) -> Path:
        return self.root / label

    def backups(self) -> list[BaseBackup]:
        """Every catalogued backup, oldest first."""
        if not self.root.is_dir():
            return []
        found = [BaseBackup.from_json(p.read_text()) for p in self.root.glob("base-*.json")]
        return sorted(found, key=lambda backup: backup.started_at)

    def check_cluster(self, system_identifier: str) -> None:
        """Refuse to mix clusters: every catalogued backup must be of this one."""
        others = {b.system_identifier for b in self.backups()} - {system_identifier}
        if others:
            raise ClusterMismatch(
                f"the backups in {self.root} are of PostgreSQL cluster {', '.join(others)}, "
                f"not of the server's cluster {system_identifier}: point BACKUP_SERVICE_DIR "
                "(or BACKUP_SERVICE_STATE_DIR) at this cluster's backups"
            )

    def get(self, label: str) -> BaseBackup:
        try:
            return BaseBackup.from_json((self.root / f"{label}.json").read_text())
        except FileNotFoundError:
            raise LookupError(f"no backup {label!r} in {self.root}") from None

    def newest(self, verified_only: bool = True) -> BaseBackup | None:
        candidates = [
            backup
            for backup in self.backups()
            if not verified_only or backup.verification is Verification.VERIFIED
        ]
        return candidates[-1] if candidates else None

    def save(self, backup: BaseBackup) -> None:
        write_atomically(self.root / f"{backup.label}.json", backup.to_json())

    def forget(self, label: str) -> None:
        """Drop the entry first: a backup without one is never offered for a restore."""
        (self.root / f"{label}.json").unlink(missing_ok=True)


def write_atomically(path: Path, text: str) -> None:
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
