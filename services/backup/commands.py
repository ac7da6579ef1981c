"""Running PostgreSQL's programs: as the OS user that runs the stack's PostgreSQL (files of a
data directory must belong to it), with their output streamed to the log as progress."""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from services.core.os_user import ServiceUser

from .errors import BackupError

log = logging.getLogger("services.backup")

# pg_basebackup --progress rewrites one line with carriage returns.
LINE_END = re.compile(rb"[\r\n]+")
TAIL_LINES = 5


async def run(
    argv: Sequence[str | Path],
    *,
    what: str,
    user: ServiceUser,
    env: Mapping[str, str] | None = None,
    quiet: bool = False,
    on_line: Callable[[str], None] | None = None,
) -> str:
    """Run a command as user; log its output lines (unless quiet; on_line, when given, sees
    each line instead) and return them. Raise BackupError naming what failed and its last
    lines of output when it exits non-zero."""
    if on_line is None:
        on_line = _log_line if not quiet else _ignore
    command = [*user.prefix, *map(str, argv)]
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, **(env or {})},
        cwd="/",  # the service user may not be able to enter the current directory
    )
    assert process.stdout is not None
    lines: list[str] = []
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    pending = b""
    try:
        while chunk := await process.stdout.read(4096):
            *complete, pending = LINE_END.split(pending + chunk)
            for raw in complete:
                _take(raw, lines, tail, on_line)
        returncode = await process.wait()
    except asyncio.CancelledError:
        # The service is shutting down: don't leave a pg_basebackup running without us.
        if process.returncode is None:
            process.terminate()
        raise
    _take(pending, lines, tail, on_line)
    if returncode != 0:
        detail = " | ".join(tail) or f"exit status {process.returncode}"
        raise BackupError(f"{what} failed: {detail}")
    return "\n".join(lines)


def _take(raw: bytes, lines: list[str], tail: deque[str], on_line: Callable[[str], None]) -> None:
    line = raw.decode(errors="replace").strip()
    if not line:
        return
    lines.append(line)
    tail.append(line)
    on_line(line)


def _log_line(line: str) -> None:
    log.info("  %s", line)


def _ignore(line: str) -> None:
    pass
