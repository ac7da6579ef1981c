"""Full filesystems for the chaos scenarios: a small ext4 filesystem in a file, loop-mounted
(root only), put under PostgreSQL's pg_wal (`postgres-disk-full`) or over the WAL archive
(`archive-full`), filled, freed, and taken away again.

Every mount is undone on every way out: the scenarios hold them in `with` blocks (the harness
turns SIGTERM and SIGHUP into an exit that runs them), and a run that was killed outright
(SIGKILL) leaves them for the next run's start, which restores pg_wal and the archive and
unmounts whatever is still mounted under the stack's `chaos-mounts/`.

Honest about what they simulate: a filesystem of its own for pg_wal (what `initdb --waldir`
sets up) or for the archive, filled by another writer (the filler file), so PostgreSQL meets
ENOSPC exactly where a real full disk would hit it."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from infra.postgres_server import PostgresServer
from infra.stack import LocalStack
from infra.stack_state import StackState
from infra.system import StackError
from services.core.os_user import ServiceUser

MOUNTS = "chaos-mounts"  # under the stack's state directory
FILLER = ".chaos-filler"
MIB = 1024**2
# Room left for PostgreSQL beside what pg_wal holds when it moves: three WAL segments.
WAL_HEADROOM = 48 * MIB
ARCHIVE_SIZE = 32 * MIB
UNMOUNT_ATTEMPTS = 20
RESTART_WAIT_SECONDS = 30.0


@dataclass(frozen=True)
class LoopFilesystem:
    image: Path  # the file holding the filesystem
    mountpoint: Path

    def create(self, size: int, owner: ServiceUser, mode: int = 0o700) -> None:
        """A fresh ext4 filesystem of `size` bytes mounted at mountpoint, owned by `owner`.
        No blocks reserved for root (-m 0): the filler fills it for everyone."""
        self.image.parent.mkdir(parents=True, exist_ok=True)
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        with self.image.open("wb") as handle:
            handle.truncate(size)
        _run("mkfs.ext4", "-q", "-F", "-m", "0", "-L", "chaos", str(self.image))
        # A loop mount set up by mount(8) is detached by the kernel once unmounted.
        _run("mount", "-o", "loop", str(self.image), str(self.mountpoint))
        (self.mountpoint / "lost+found").rmdir()  # not a WAL file: nothing of PostgreSQL's
        os.chown(self.mountpoint, owner.uid, owner.gid)
        self.mountpoint.chmod(mode)

    def mount_again(self) -> None:
        """The image mounted once more (its mount lost, to a reboot): refused without one."""
        if not self.image.exists():
            raise StackError(
                f"{self.mountpoint} should be mounted from {self.image}, which is gone; "
                "restore by hand (a copy of what was moved is kept beside it)"
            )
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        _run("mount", "-o", "loop", str(self.image), str(self.mountpoint))

    @property
    def mounted(self) -> bool:
        return mounted(self.mountpoint)

    def fill(self) -> int:
        """Fill every free byte with a file of root's; returns its size."""
        size = 0
        with (self.mountpoint / FILLER).open("ab", buffering=0) as handle:
            for block in (b"\0" * MIB, b"\0" * 4096):  # then the last blocks
                while True:
                    try:
                        size += handle.write(block) or 0
                    except OSError as error:
                        if error.errno != errno.ENOSPC:
                            raise
                        break
            os.fsync(handle.fileno())
        return size

    def free(self) -> None:
        (self.mountpoint / FILLER).unlink(missing_ok=True)

    def remove(self) -> None:
        """Unmount (the loop device goes with it) and delete the image; no-op when gone."""
        for attempt in range(UNMOUNT_ATTEMPTS):
            if not self.mounted:
                break
            done = subprocess.run(
                ["umount", str(self.mountpoint)], capture_output=True, text=True, check=False
            )
            if done.returncode != 0 and attempt == UNMOUNT_ATTEMPTS - 1:
                raise StackError(f"cannot unmount {self.mountpoint}: {done.stderr.strip()}")
            if done.returncode != 0:
                time.sleep(0.5)  # a process of ours still inside (a copy, a psql)
        _detach_loops(self.image)
        self.image.unlink(missing_ok=True)
        if self.mountpoint.is_dir() and not any(self.mountpoint.iterdir()):
            self.mountpoint.rmdir()


def mounted(path: Path) -> bool:
    return str(path) in mountpoints()


def mountpoints() -> list[str]:
    """Every mount point of this mount namespace (/proc/self/mountinfo, octal escapes read)."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        field = line.split()[4]
        points.append(field.encode().decode("unicode_escape"))
    return points


# -- pg_wal on a small filesystem -------------------------------------------------------


class WalOnLoop:
    """PostgreSQL's pg_wal moved onto a small loop filesystem (a symlink, as `initdb
    --waldir` makes) and back. PostgreSQL is stopped on purpose for each move (before the
    traffic starts and after it ended), so the supervisor leaves it alone meanwhile."""

    def __init__(self, stack: LocalStack, user: ServiceUser) -> None:
        self.stack = stack
        self.user = user
        root = stack.paths.root / MOUNTS
        self.fs = LoopFilesystem(root / "pg_wal.img", root / "pg_wal")
        self.pg_wal = stack.paths.pgdata / "pg_wal"
        self.saved = stack.paths.pgdata / "pg_wal.chaos-saved"

    @contextmanager
    def moved(self) -> Iterator[LoopFilesystem]:
        self.restore()  # a killed earlier run's leftovers
        size = _disk_usage(self.pg_wal) + WAL_HEADROOM
        self.stack.stop_postgres()
        try:
            self.fs.create(size, self.user)
            _copy_tree(self.pg_wal, self.fs.mountpoint)
            self.pg_wal.rename(self.saved)
            self.pg_wal.symlink_to(self.fs.mountpoint)
            self.stack.start_postgres()
            yield self.fs
        finally:
            self.restore()

    @property
    def _postgres(self) -> PostgresServer:
        state = StackState.load(self.stack.paths.state)
        return PostgresServer(self.stack.paths, self.user, state)

    def needed(self) -> bool:
        return self.pg_wal.is_symlink() or self.saved.exists() or self.fs.mounted

    def restore(self) -> None:
        """pg_wal back in the data directory with whatever PostgreSQL wrote meanwhile, the
        filesystem gone, PostgreSQL started; nothing to do when nothing was moved."""
        if not self.needed():
            return
        if self.pg_wal.is_symlink() and not self.fs.mounted:
            self.fs.mount_again()  # after a reboot: what PostgreSQL wrote is in the image
        if self.fs.mounted and not self._postgres.stopped_marker.exists():
            # Ended during the fault: with room again, the supervisor (still retrying, and
            # deaf to a stop meanwhile) starts PostgreSQL; then it is stopped on purpose.
            self.fs.free()
            deadline = time.monotonic() + RESTART_WAIT_SECONDS
            while self._postgres.pid() is None and time.monotonic() < deadline:
                time.sleep(0.5)
        self.stack.stop_postgres()  # on purpose: the supervisor stays away until started
        if self.pg_wal.is_symlink():
            self.fs.free()
            back = self.pg_wal.with_name("pg_wal.chaos-back")
            shutil.rmtree(back, ignore_errors=True)
            back.mkdir(mode=0o700)
            os.chown(back, self.user.uid, self.user.gid)
            _copy_tree(self.fs.mountpoint, back)
            self.pg_wal.unlink()
            back.rename(self.pg_wal)
            shutil.rmtree(self.saved, ignore_errors=True)
        elif self.saved.exists() and not self.pg_wal.exists():
            self.saved.rename(self.pg_wal)  # killed between the rename and the symlink
        else:
            shutil.rmtree(self.saved, ignore_errors=True)  # pg_wal never left
        self.fs.remove()
        self.stack.start_postgres()


# -- the WAL archive on a small filesystem ----------------------------------------------


class ArchiveOnLoop:
    """A small loop filesystem mounted over the WAL archive directory: PostgreSQL's
    archive_command (infra/postgres/archive-wal.sh) writes into it from the moment it is
    mounted; the files already archived wait underneath. Taking it away moves the mount
    aside first (one atomic step, after which archiving writes to the real directory again),
    then links what was archived into it into the real directory, then unmounts: no archived
    file is left behind. archive-wal.sh writes a temporary file and links it into place, so
    an archiving caught across either step fails its link and is retried by PostgreSQL."""

    def __init__(self, stack: LocalStack, user: ServiceUser) -> None:
        self.archive = stack.paths.wal_archive
        root = stack.paths.root / MOUNTS
        self.fs = LoopFilesystem(root / "wal-archive.img", self.archive)
        self.aside = root / "wal-archive-aside"
        self.user = user
        self.moved: list[str] = []  # the files archived on the small filesystem

    @contextmanager
    def mounted_over(self) -> Iterator[LoopFilesystem]:
        self.restore()
        mode = self.archive.stat().st_mode & 0o7777
        try:
            self.fs.create(ARCHIVE_SIZE, self.user, mode)
            yield self.fs
        finally:
            self.restore()

    def restore(self) -> None:
        """The archive's own directory back with every file archived on the small
        filesystem (their names in `moved`)."""
        if mounted(self.archive):
            self.aside.mkdir(parents=True, exist_ok=True)
            _run("mount", "--move", str(self.archive), str(self.aside))
        elif self.fs.image.exists() and not mounted(self.aside):
            # After a reboot: files archived onto it are in the image.
            LoopFilesystem(self.fs.image, self.aside).mount_again()
        if mounted(self.aside):
            (self.aside / FILLER).unlink(missing_ok=True)
            for source in sorted(self.aside.iterdir()):
                if source.name.startswith("."):  # archive-wal.sh's temporaries
                    continue
                _copy_durably(source, self.archive / source.name, self.user)
                self.moved.append(source.name)
            LoopFilesystem(self.fs.image, self.aside).remove()
        _detach_loops(self.fs.image)
        self.fs.image.unlink(missing_ok=True)


def cleanup(stack: LocalStack) -> None:
    """What a killed run left: pg_wal and the archive restored, every mount under the
    stack's chaos-mounts/ (and over its archive) undone."""
    try:
        user = ServiceUser.detect()
    except Exception:  # no service user: no stack was ever started, nothing to clean
        return
    if not stack.paths.state.exists():
        return
    WalOnLoop(stack, user).restore()
    ArchiveOnLoop(stack, user).restore()
    root = stack.paths.root / MOUNTS
    for point in mountpoints():
        if Path(point).is_relative_to(root):
            LoopFilesystem(Path(point + ".img"), Path(point)).remove()


def _copy_tree(source: Path, target: Path) -> None:
    """Everything in source into target, owners and modes kept (cp -a)."""
    _run("cp", "-a", "--", f"{source}/.", str(target))


def _copy_durably(source: Path, target: Path, owner: ServiceUser) -> None:
    """As archive-wal.sh stores a file: a temporary copy, fsynced, linked into place; an
    existing target is left (it was archived there already)."""
    if target.exists():
        return
    temp = target.with_name(f".{target.name}.chaos-tmp")
    shutil.copy2(source, temp)
    os.chown(temp, owner.uid, owner.gid)
    with temp.open("rb") as handle:
        os.fsync(handle.fileno())
    try:
        os.link(temp, target)
    except FileExistsError:
        pass
    finally:
        temp.unlink()
    directory = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _disk_usage(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _detach_loops(image: Path) -> None:
    """Any loop device still attached to the image (a mount that failed half-way)."""
    found = subprocess.run(
        ["losetup", "--associated", str(image), "--noheadings", "--output", "NAME"],
        capture_output=True,
        text=True,
        check=False,
    )
    for device in found.stdout.split():
        subprocess.run(["losetup", "--detach", device], capture_output=True, check=False)


def _run(*argv: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise StackError(f"{' '.join(argv)} failed: {done.stderr.strip() or done.returncode}")
