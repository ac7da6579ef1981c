"""A PostgreSQL server on a restored data directory, run by the stack's OS user on a free
loopback port with its socket beside the data directory: recovery, promotion, queries."""

from __future__ import annotations

import asyncio
import logging
import shlex
import socket
import time
from pathlib import Path

from services.core.os_user import ServiceUser

from .commands import run
from .errors import BackupError
from .settings import BackupServiceSettings

log = logging.getLogger("services.backup")
PROGRESS_EVERY_SECONDS = 5.0
LOG_TAIL_LINES = 5


def free_port(low: int, high: int) -> int:
    for port in range(low, high + 1):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise BackupError(f"no free port for a scratch PostgreSQL in {low}-{high}")


class ScratchServer:
    def __init__(
        self,
        settings: BackupServiceSettings,
        data_dir: Path,
        user: ServiceUser,
        *,
        keep_wal: bool,
    ) -> None:
        self.settings = settings
        self.data_dir = data_dir
        self.user = user
        # Neither writes into the live archive: a drill's server keeps no WAL for it; a
        # restore's server archives with no command, so PostgreSQL marks its new timeline's
        # history and segments ready and archives them once it runs as the live server.
        self.keep_wal = keep_wal
        self.socket_dir = data_dir.parent
        self.log_file = data_dir.parent / "postgresql.log"
        self.port = 0

    async def start(self) -> None:
        self.port = free_port(self.settings.scratch_port_min, self.settings.scratch_port_max)
        options = ["-p", str(self.port), "-k", str(self.socket_dir)]
        options += ["-c", "listen_addresses=127.0.0.1"]
        if self.keep_wal:
            options += ["-c", "archive_mode=on", "-c", "archive_command="]
        else:
            options += ["-c", "archive_mode=off"]
        log.info("scratch PostgreSQL on 127.0.0.1:%d (log: %s)", self.port, self.log_file)
        try:
            await self._pg_ctl(
                "start",
                "-w",
                f"--timeout={int(self.settings.recovery_timeout_seconds)}",
                "-l",
                str(self.log_file),
                "-o",
                shlex.join(options),
            )
        except BackupError:
            raise BackupError(f"scratch PostgreSQL failed to start: {self.log_tail()}") from None

    async def stop(self) -> None:
        if self.port and await self.running():
            await self._pg_ctl("stop", "-w", "-m", "fast")

    async def running(self) -> bool:
        try:
            await self._pg_ctl("status")
        except BackupError:
            return False
        return True

    async def query(self, sql: str, database: str = "postgres") -> str:
        """Run sql as the OS user's superuser over the socket; its rows, unaligned."""
        return await run(
            [
                self.settings.pg_bindir / "psql",
                f"--host={self.socket_dir}",
                f"--port={self.port}",
                f"--dbname={database}",
                "--no-psqlrc",
                "--tuples-only",
                "--no-align",
                "--set=ON_ERROR_STOP=1",
                f"--command={sql}",
            ],
            what="query on the scratch PostgreSQL",
            user=self.user,
            quiet=True,
        )

    async def wait_promoted(self) -> None:
        """Wait until recovery ends (the target reached, or the archive's end) and the server
        promotes, logging how far the replay got."""
        deadline = time.monotonic() + self.settings.recovery_timeout_seconds
        next_report = 0.0
        while True:
            if not await self.running():
                raise BackupError(f"recovery failed: {self.log_tail()}")
            state = await self.query(
                "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn(), "
                "pg_last_xact_replay_timestamp()"
            )
            in_recovery, lsn, replayed_at = [*state.split("|"), "", ""][:3]
            if in_recovery == "f":
                return
            if time.monotonic() >= next_report:
                log.info("  replaying WAL: at %s (transactions up to %s)", lsn, replayed_at or "-")
                next_report = time.monotonic() + PROGRESS_EVERY_SECONDS
            if time.monotonic() > deadline:
                raise BackupError(
                    f"recovery did not finish in {self.settings.recovery_timeout_seconds:.0f} s"
                )
            await asyncio.sleep(0.5)

    def log_tail(self) -> str:
        try:
            lines = self.log_file.read_text(errors="replace").strip().splitlines()
        except OSError:
            return f"no log at {self.log_file}"
        wanted = [line for line in lines if "FATAL" in line or "ERROR" in line] or lines
        return " | ".join(wanted[-LOG_TAIL_LINES:]) + f" (log: {self.log_file})"

    async def _pg_ctl(self, *args: str) -> None:
        await run(
            [self.settings.pg_bindir / "pg_ctl", *args, "-D", self.data_dir],
            what=f"pg_ctl {args[0]}",
            user=self.user,
            quiet=True,
        )
