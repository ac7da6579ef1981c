"""The offsite repository: pgBackRest's repo2 on S3-compatible object storage, encrypted on this
side (aes-256-cbc; the store never sees the passphrase), zst-compressed.

How WAL gets there (the long-outage design, docs/offsite-backups.md): PostgreSQL's
archive_command keeps writing the local archive only (archive-wal.sh), so an object-store
outage never stops archiving nor makes pg_wal grow. The backup service ships each archived
file to the offsite repository with `pgbackrest archive-push`, in WAL order, remembering the
last one shipped; the local archive is the spool. During an outage the unshipped files wait
there (local retention keeps them: retention.py) and the offsite lag metrics and alert say how
far behind the copy is; once the store answers again the next pass catches up.

Secrets (S3 key and secret, the passphrase) are read from their files and handed to pgBackRest
in its environment, never on a command line or in its configuration file."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from services.core.os_user import ServiceUser

from .catalogue import write_atomically
from .commands import run
from .errors import BackupError
from .settings import BackupServiceSettings

log = logging.getLogger("services.backup")
REPO = 2  # repo1 stays free for the local repository when it moves to pgBackRest
SHIPPABLE = re.compile(
    r"^([0-9A-F]{8}([0-9A-F]{16}(\.partial|\.[0-9A-F]{8}\.backup)?|\.history))\.gz$"
)
SEGMENT = re.compile(r"^[0-9A-F]{24}$")
WAL_SEGMENT_BYTES = 16 * 1024 * 1024
BackupType = Literal["full", "diff"]

# pgBackRest's messages for the faults an operator can fix, and the setting to look at.
CREDENTIAL_ERRORS = (
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AccessDenied",
    "403 (Forbidden)",
)
PASSPHRASE_ERRORS = ("unable to decrypt", "cipher", "CryptoError")


@dataclass
class OffsiteState:
    """What the service last did with the offsite repository (offsite/state.json)."""

    # Which repository this state is about (endpoint, bucket, path): a state about another one
    # (the operator moved the offsite copy) is started afresh.
    repository: str | None = None
    stanza_created: bool = False  # stanza-create ran against this repository
    last_shipped: str | None = None  # the newest WAL segment pushed (segments go in order)
    # History, backup-label and partial files pushed: they are named after a segment but can
    # be archived before it (a backup's label before its stop segment), so they are tracked by
    # name, as long as the local archive holds them.
    shipped_others: list[str] = field(default_factory=list)
    last_shipped_at: float | None = None  # when it was pushed (Unix time)
    last_ship_error: str | None = None
    last_backup: str | None = None  # pgBackRest's label of the newest offsite backup
    last_backup_type: str | None = None
    last_backup_at: float | None = None
    last_full_at: float | None = None
    last_verified: str | None = None  # the newest backup label that `verify` passed
    last_verified_at: float | None = None
    last_verify_ok: bool | None = None
    last_verify_error: str | None = None


def segment_end_lsn(name: str) -> int:
    """The WAL position just past the segment named name (24 hex digits)."""
    log_id, segment = int(name[8:16], 16), int(name[16:24], 16)
    return (log_id * 0x100000000) + (segment + 1) * WAL_SEGMENT_BYTES


def parse_lsn(lsn: str) -> int:
    high, low = lsn.split("/")
    return (int(high, 16) << 32) + int(low, 16)


class Offsite:
    def __init__(self, settings: BackupServiceSettings, user: ServiceUser) -> None:
        if not settings.offsite_configured:
            raise BackupError(
                "no offsite repository: set BACKUP_SERVICE_OFFSITE_ENDPOINT and "
                "BACKUP_SERVICE_OFFSITE_BUCKET (docs/offsite-backups.md)"
            )
        self.settings = settings
        self.user = user
        self.dir = settings.offsite_dir
        self.state_file = self.dir / "state.json"

    # -- configuration -------------------------------------------------------------------

    def repo_lines(self) -> list[str]:
        settings = self.settings
        host, _, port = (settings.offsite_endpoint or "").partition(":")
        lines = [
            f"repo{REPO}-type=s3",
            f"repo{REPO}-path={settings.offsite_path}",
            f"repo{REPO}-s3-bucket={settings.offsite_bucket}",
            f"repo{REPO}-s3-endpoint={host}",
            f"repo{REPO}-s3-region={settings.offsite_region}",
            f"repo{REPO}-s3-uri-style={settings.offsite_uri_style}",
            f"repo{REPO}-cipher-type=aes-256-cbc",
            f"repo{REPO}-retention-full-type=count",
            f"repo{REPO}-retention-full={settings.offsite_retention_full}",
        ]
        if port:
            lines.append(f"repo{REPO}-storage-port={port}")
        if settings.offsite_ca_file is not None:
            lines.append(f"repo{REPO}-storage-ca-file={settings.offsite_ca_file}")
        return lines

    def write_config(self, directory: Path, pg_path: Path, *, live: bool) -> Path:
        """A pgbackrest.conf in directory that has the offsite repository only (no local
        one, as on a new server), for the live server (live) or a restore into pg_path.
        A restore's holds the secrets too (mode 0600, as on a new server): the restored
        server's restore_command runs pgBackRest without the service's environment."""
        directory.mkdir(parents=True, exist_ok=True)
        self.user.own(directory)
        for sub in ("log", "lock", "spool"):
            (directory / sub).mkdir(exist_ok=True)
            self.user.own(directory / sub)
        stanza = [f"pg1-path={pg_path}"]
        secrets = []
        if not live:
            prefix = f"PGBACKREST_REPO{REPO}_"
            secrets = [
                f"{name[len('PGBACKREST_') :].lower().replace('_', '-')}={value}"
                for name, value in self.environment().items()
                if name.startswith(prefix)
            ]
        if live:
            stanza += [
                f"pg1-port={self.settings.pg_port}",
                f"pg1-socket-path={self.settings.live_socket_dir}",
                f"pg1-user={self.user.name}",
            ]
        text = "\n".join(
            [
                "# Written by the backup service (services/backup/offsite.py).",
                "[global]",
                *self.repo_lines(),
                *secrets,
                "compress-type=zst",
                "start-fast=y",
                "archive-async=n",
                "log-level-console=info",
                "log-level-file=off",
                f"lock-path={directory / 'lock'}",
                f"log-path={directory / 'log'}",
                f"spool-path={directory / 'spool'}",
                "",
                f"[{self.settings.offsite_stanza}]",
                *stanza,
                "",
            ]
        )
        path = directory / "pgbackrest.conf"
        path.write_text(text)
        path.chmod(0o600)
        self.user.own(path)
        return path

    def environment(self) -> dict[str, str]:
        settings = self.settings
        prefix = f"PGBACKREST_REPO{REPO}_"
        return {
            prefix + "S3_KEY": _secret(settings.offsite_key_file, "KEY_FILE"),
            prefix + "S3_KEY_SECRET": _secret(settings.offsite_secret_file, "SECRET_FILE"),
            prefix + "CIPHER_PASS": _secret(settings.offsite_passphrase_file, "PASSPHRASE_FILE"),
        }

    async def pgbackrest(self, config: Path, *args: str, what: str, quiet: bool = True) -> str:
        output: list[str] = []

        def keep(line: str) -> None:
            output.append(line)
            if not quiet:
                log.info("  %s", line)

        try:
            return await run(
                [
                    self.settings.pgbackrest,
                    f"--config={config}",
                    f"--stanza={self.settings.offsite_stanza}",
                    *args,
                ],
                what=what,
                user=self.user,
                env=self.environment(),
                on_line=keep,
            )
        except BackupError as error:
            raise BackupError(explain(what, str(error), output)) from None

    def live_config(self) -> Path:
        return self.write_config(self.dir, self.settings.live_pgdata, live=True)

    # -- state -----------------------------------------------------------------------------

    def load_state(self) -> OffsiteState:
        return load_state(self.settings)

    def save_state(self, state: OffsiteState) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        write_atomically(self.state_file, json.dumps(asdict(state), indent=2) + "\n")

    # -- operations ------------------------------------------------------------------------

    async def ensure_stanza(self) -> None:
        """Create the stanza in the offsite repository (idempotent: pgBackRest checks an
        existing one against the live server)."""
        await self.pgbackrest(self.live_config(), "stanza-create", what="pgbackrest stanza-create")
        state = self.load_state()
        if not state.stanza_created:
            state.stanza_created = True
            self.save_state(state)

    def unshipped(self, state: OffsiteState) -> list[str]:
        return sorted(entry.name for entry in pending(self.settings, state))

    async def ship(self) -> int:
        """Push every archived file not yet offsite, oldest first; the number pushed. A
        failure stops the pass (the next one resumes at the same file) and is recorded."""
        state = self.load_state()
        pending = self.unshipped(state)
        if not pending:
            return 0
        if not state.stanza_created:  # WAL can only be pushed into an existing stanza
            await self.ensure_stanza()
            state = self.load_state()
        config = self.live_config()
        spool = self.dir / "spool" / "push"
        spool.mkdir(parents=True, exist_ok=True)
        self.user.own(spool)
        shipped = 0
        try:
            for archived in pending:
                name = archived[:-3]
                # One decompressed file at a time: the spool never holds more than 16 MB.
                plain = spool / name
                await asyncio.to_thread(_gunzip, self.settings.archive_dir / archived, plain)
                self.user.own(plain)
                timeout = self.settings.offsite_push_timeout_seconds
                try:
                    async with asyncio.timeout(timeout):
                        await self.pgbackrest(
                            config,
                            "archive-push",
                            str(plain),
                            what=f"offsite archive-push of {name}",
                        )
                except TimeoutError:
                    raise BackupError(
                        f"offsite archive-push of {name} did not finish in {timeout:.0f} s "
                        "(BACKUP_SERVICE_OFFSITE_PUSH_TIMEOUT_SECONDS): is the object store at "
                        f"{self.settings.offsite_endpoint} reachable?"
                    ) from None
                finally:
                    plain.unlink(missing_ok=True)
                if SEGMENT.match(name):
                    state.last_shipped = name
                else:
                    state.shipped_others.append(name)
                state.last_shipped_at = time.time()
                state.last_ship_error = None
                shipped += 1
                self.save_state(state)
        except (BackupError, OSError) as error:
            state.last_ship_error = str(error)
            self.save_state(state)
            raise BackupError(str(error)) from None
        present = {name[:-3] for name in pending_names(self.settings)}
        state.shipped_others = [name for name in state.shipped_others if name in present]
        self.save_state(state)
        log.info("offsite: shipped %d WAL file(s), up to %s", shipped, state.last_shipped)
        return shipped

    async def backup(self, kind: BackupType) -> str:
        """A full or differential backup into the offsite repository; returns its label once
        the WAL it needs to be consistent is offsite too.

        pgBackRest's own archive check wants archive_command to be pgBackRest (it is
        archive-wal.sh here, see the module's docstring), so it is off: the WAL up to the
        backup's stop segment is shipped here instead, and verify checks it is all there."""
        config = self.live_config()
        await self.ensure_stanza()
        log.info("offsite: %s backup ...", kind)
        await self.pgbackrest(
            config,
            f"--repo={REPO}",
            f"--type={kind}",
            "--no-archive-check",
            "backup",
            what=f"offsite {kind} backup",
        )
        stanzas = await self.info(config)
        newest = stanzas[0]["backup"][-1]
        label, stop = str(newest["label"]), str(newest["archive"]["stop"])
        await self.ship_through(stop)
        state = self.load_state()
        now = time.time()
        state.last_backup, state.last_backup_type, state.last_backup_at = label, kind, now
        if kind == "full":
            state.last_full_at = now
        self.save_state(state)
        log.info("offsite: %s backup %s done (WAL through %s offsite)", kind, label, stop)
        return label

    async def ship_through(self, segment: str) -> None:
        """Ship until segment is offsite, waiting for the live server to archive it."""
        deadline = time.monotonic() + self.settings.archive_wait_seconds
        while True:
            await self.ship()
            last = self.load_state().last_shipped
            if last is not None and last[:24] >= segment:
                return
            if time.monotonic() > deadline:
                raise BackupError(
                    f"WAL segment {segment} did not reach the offsite repository in "
                    f"{self.settings.archive_wait_seconds:.0f} s (last shipped: {last})"
                )
            await asyncio.sleep(0.5)

    async def info(self, config: Path | None = None) -> list[dict[str, Any]]:
        output = await self.pgbackrest(
            config or self.live_config(),
            f"--repo={REPO}",
            "--output=json",
            "--log-level-console=warn",
            "info",
            what="pgbackrest info",
        )
        data: list[dict[str, Any]] = json.loads(output[output.find("[") :])
        return data

    async def newest_label(self) -> str:
        stanzas = await self.info()
        backups = stanzas[0].get("backup", []) if stanzas else []
        if not backups:
            raise BackupError("the offsite repository holds no backup")
        return str(backups[-1]["label"])

    async def verify(self, config: Path | None = None) -> None:
        """pgBackRest's verify of the whole offsite repository (checksums of every backup
        file and WAL segment, gaps in the WAL); it may exit 0 having found errors, so its
        report is read too. Recorded in the state."""
        state = self.load_state()
        try:
            report = await self.pgbackrest(
                config or self.live_config(), f"--repo={REPO}", "verify", what="offsite verify"
            )
            problems = verify_problems(report)
            if problems:
                raise BackupError(f"offsite verify found damage: {'; '.join(problems)}")
        except BackupError as error:
            state.last_verify_ok, state.last_verify_error = False, str(error)
            self.save_state(state)
            raise
        state.last_verify_ok, state.last_verify_error = True, None
        state.last_verified, state.last_verified_at = state.last_backup, time.time()
        self.save_state(state)
        log.info("offsite: verify passed (newest backup %s)", state.last_verified)

    async def expire(self) -> None:
        await self.pgbackrest(self.live_config(), f"--repo={REPO}", "expire", what="offsite expire")

    async def restore(self, into: Path, target_time: datetime | None = None) -> None:
        """Restore from the offsite repository into the empty directory into, to the end of
        the offsite WAL or to target_time (then promoted there), with a configuration that
        knows nothing but the offsite repository (what an operator has on a new server)."""
        into.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.user.own(into.parent)  # the scratch server's socket and log go there
        config = self.write_config(into.parent / "pgbackrest", into, live=False)
        into.mkdir(mode=0o700, parents=True, exist_ok=True)  # noqa: ASYNC240 (one mkdir)
        self.user.own(into)
        target = []
        if target_time is not None:
            # pgBackRest parses "YYYY-MM-DD HH:MM:SS[.ffffff]+ZZ", not ISO 8601's "T".
            moment = target_time.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00")
            target = ["--type=time", f"--target={moment}"]
            target.append("--target-action=promote")
        await self.pgbackrest(
            config,
            f"--repo={REPO}",
            *target,
            "restore",
            what="offsite restore",
            quiet=False,
        )


def verify_problems(report: str) -> list[str]:
    """The lines of a verify report that say something is wrong."""
    problems = [line for line in report.splitlines() if "status: error" in line]
    for match in re.finditer(r"(missing|checksum invalid|size invalid|other): (\d+)", report):
        if int(match.group(2)) > 0:
            problems.append(match.group(0))
    for line in report.splitlines():
        if "invalid" in line.lower() and ("WARN" in line or "ERROR" in line):
            problems.append(line.split(": ", 1)[-1])
    return list(dict.fromkeys(problems))


def explain(what: str, message: str, output: list[str]) -> str:
    """pgBackRest's error: its ERROR lines (an HTTP error's response spans several lines after
    it, where the S3 error code is), with the setting to look at when it is the operator's to
    fix; message (the last lines) when it printed no ERROR."""
    start = next((i for i, line in enumerate(output) if "ERROR: [" in line), None)
    if start is not None:
        detail = " | ".join(line for line in output[start:] if "command end" not in line)
        message = f"{what} failed: {detail[:1500]}"
    if any(marker in message for marker in CREDENTIAL_ERRORS):
        return (
            "the object store refused the offsite credentials: check "
            "BACKUP_SERVICE_OFFSITE_KEY_FILE and BACKUP_SERVICE_OFFSITE_SECRET_FILE "
            f"({message})"
        )
    if any(marker in message for marker in PASSPHRASE_ERRORS):
        return (
            "the offsite repository cannot be decrypted: check "
            f"BACKUP_SERVICE_OFFSITE_PASSPHRASE_FILE ({message})"
        )
    if "unable to find" in message.lower() or "tls" in message.lower():
        return f"{message} (check BACKUP_SERVICE_OFFSITE_ENDPOINT and _CA_FILE)"
    return message


@dataclass(frozen=True)
class Lag:
    seconds: float
    bytes: int | None  # None when the live server's position is unknown


def offsite_lag(
    settings: BackupServiceSettings, state: OffsiteState, current_lsn: str | None, now: float
) -> Lag:
    """How far the offsite copy is behind: the age of the oldest archived file not shipped
    yet, and the WAL the live server wrote past the newest segment shipped."""
    seconds = 0.0
    try:
        entries = pending(settings, state)
        if entries:
            seconds = max(0.0, now - min(entry.stat().st_mtime for entry in entries))
    except FileNotFoundError:  # a file removed while we looked
        pass
    lag_bytes = None
    if current_lsn is not None:
        shipped = state.last_shipped
        end = segment_end_lsn(shipped[:24]) if shipped and SEGMENT.match(shipped[:24]) else 0
        lag_bytes = max(0, parse_lsn(current_lsn) - end)
    return Lag(seconds, lag_bytes)


def offsite_health(settings: BackupServiceSettings) -> dict[str, Any]:
    """The offsite copy as /health/ready reports it. status: NOT CONFIGURED; FAILING (the last
    push or verify failed: error says why); PENDING (configured, no verified backup yet); OK."""
    if not settings.offsite_configured:
        return {
            "status": "NOT CONFIGURED",
            "detail": "every backup is on this machine (docs/offsite-backups.md)",
        }
    state = load_state(settings)
    report: dict[str, Any] = {
        "repository": f"{settings.offsite_bucket} at {settings.offsite_endpoint}",
        "wal_shipped_through": state.last_shipped,
        "newest_verified_backup": state.last_verified,
    }
    error = state.last_ship_error or (state.last_verify_error if not state.last_verify_ok else None)
    if error is not None:
        return {"status": "FAILING", "error": error, **report}
    return {"status": "OK" if state.last_verified else "PENDING", **report}


def first_unshipped(settings: BackupServiceSettings) -> str | None:
    """The oldest WAL segment in the local archive not yet offsite (None: no offsite
    repository, or everything shipped)."""
    if not settings.offsite_configured:
        return None
    names = sorted(
        entry.name[:-3]
        for entry in pending(settings, load_state(settings))
        if SEGMENT.match(entry.name[:-3])
    )
    return names[0] if names else None


def pending_names(settings: BackupServiceSettings) -> list[str]:
    """The names of the shippable files in the local archive."""
    try:
        return [e.name for e in os.scandir(settings.archive_dir) if SHIPPABLE.match(e.name)]
    except FileNotFoundError:
        return []


def pending(settings: BackupServiceSettings, state: OffsiteState) -> list[os.DirEntry[str]]:
    """The files in the local archive not offsite yet: segments past the newest one shipped,
    and any other file not shipped by name."""
    try:
        entries = [e for e in os.scandir(settings.archive_dir) if SHIPPABLE.match(e.name)]
    except FileNotFoundError:
        return []
    last, others = state.last_shipped, set(state.shipped_others)
    return [
        entry
        for entry in entries
        if (
            (last is None or entry.name[:-3] > last)
            if SEGMENT.match(entry.name[:-3])
            else entry.name[:-3] not in others
        )
    ]


def repository_id(settings: BackupServiceSettings) -> str:
    return f"{settings.offsite_endpoint}/{settings.offsite_bucket}{settings.offsite_path}"


def load_state(settings: BackupServiceSettings) -> OffsiteState:
    fresh = OffsiteState(repository=repository_id(settings))
    try:
        data = json.loads((settings.offsite_dir / "state.json").read_text())
    except (FileNotFoundError, ValueError):
        return fresh
    if data.get("repository") != fresh.repository:
        return fresh
    known = OffsiteState.__dataclass_fields__
    return OffsiteState(**{key: value for key, value in data.items() if key in known})


def _secret(path: Path | None, setting: str) -> str:
    name = f"BACKUP_SERVICE_OFFSITE_{setting}"
    if path is None:
        raise BackupError(f"set {name}")
    try:
        value = path.read_text().strip()
    except OSError as error:
        raise BackupError(f"cannot read {name} ({path}): {error.strerror}") from None
    if not value:
        raise BackupError(f"{name} ({path}) is empty")
    return value


def _gunzip(source: Path, target: Path) -> None:
    with gzip.open(source, "rb") as compressed, target.open("wb") as plain:
        shutil.copyfileobj(compressed, plain, 1024 * 1024)
