"""Operators' commands: python -m services.backup.cli {backup,verify,list,restore,drill,
retention,dump} --help. Long operations print progress; a failure exits 1 with one line
saying what failed."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

# Only what parsing needs is imported up front: --help and `list` answer without loading the
# database layer (SQLAlchemy, asyncpg) or the backup machinery; _execute imports the rest.
if TYPE_CHECKING:
    from .context import Context
    from .restore import RestoreReport

log = logging.getLogger("services.backup")


def parse_time(value: str) -> datetime:
    """An ISO 8601 time such as '2026-11-22 04:30:00+00:00'; without a zone it means UTC."""
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a time like '2026-11-22 04:30:00+00:00'"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_timeline(value: str) -> str:
    if value == "latest" or (value.isdigit() and int(value) > 0):
        return value
    raise argparse.ArgumentTypeError(f"{value!r} is not a timeline number or 'latest'")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m services.backup.cli",
        description=(
            "Base backups, verification, restores, drills, retention and logical dumps of the "
            "bot stack's PostgreSQL. Settings come from the environment (BACKUP_SERVICE_*, "
            "BACKUP_USER/BACKUP_PASSWORD, MIGRATE_HOST/PORT/DATABASE, DB_* for backup_runs)."
        ),
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser(
        "backup",
        help="take a base backup now and verify it",
        description="pg_basebackup with a SHA-256 manifest, pg_verifybackup, catalogue entry.",
    )
    verify = commands.add_parser(
        "verify",
        help="verify catalogued backups again with pg_verifybackup",
        description="Exit 1 when any verified backup is corrupt; the catalogue records it.",
    )
    verify.add_argument("labels", nargs="*", help="backups to verify (default: all)")
    commands.add_parser("list", help="list the catalogued base backups")
    restore_parser = commands.add_parser(
        "restore",
        help="restore into a new data directory (point in time, or latest)",
        description=(
            "Restore the newest verified base backup taken before TARGET_TIME plus the archived "
            "WAL into a new data directory, promote it onto a new timeline and stop it; the "
            "live server is not touched. Prints how to switch over."
        ),
    )
    restore_parser.add_argument(
        "--target-time",
        type=parse_time,
        help="ISO 8601 time to recover to (no zone: UTC); default: everything archived",
    )
    restore_parser.add_argument(
        "--into", type=Path, help="new directory for the restore (default: under the backups)"
    )
    restore_parser.add_argument(
        "--timeline",
        type=parse_timeline,
        help=(
            "timeline to follow: a number, or 'latest' for the archive's newest branch "
            "(default: the live server's, or the one it archived on last when it is lost)"
        ),
    )
    commands.add_parser(
        "drill",
        help="restore the newest backup into a scratch server and check it",
        description="Exit 1 when the drill fails; the result goes to backup_runs and /metrics.",
    )
    commands.add_parser(
        "retention", help="apply the retention policy to base backups and archived WAL"
    )
    commands.add_parser("dump", help="take a logical dump (pg_dump, custom format)")
    offsite = commands.add_parser(
        "offsite-backup",
        help="ship WAL, take a backup into the offsite repository, verify it, expire old ones",
        description="pgBackRest backup --repo=2 (docs/offsite-backups.md).",
    )
    offsite.add_argument("--type", choices=["full", "diff"], default="full")
    commands.add_parser(
        "offsite-ship", help="push the archived WAL not yet offsite to the offsite repository"
    )
    commands.add_parser("offsite-verify", help="pgBackRest verify of the offsite repository")
    commands.add_parser(
        "disaster-drill",
        help="restore from the offsite repository alone into scratch space; report RPO, RTO",
        description=(
            "The VPS is gone: restore the latest point from the offsite repository with a "
            "configuration that knows nothing local, start it, check it against the live "
            "server. Its last lines: `RPO 12.3 s` and `RTO 45.6 s`. Exit 1 when it fails."
        ),
    )
    return parser


def _list() -> int:
    from .catalogue import Catalogue
    from .settings import BackupServiceSettings

    for backup in Catalogue(BackupServiceSettings().backup_dir).backups():
        print(
            f"{backup.label}  {backup.verification.value:<8}  timeline {backup.timeline}  "
            f"{backup.size_bytes / 1e6:9.1f} MB  finished {backup.finished_at.isoformat()}"
        )
    return 0


async def _execute(args: argparse.Namespace, context: Context) -> int:
    from .basebackup import take_backup, verify_backup
    from .catalogue import Catalogue
    from .drill import drill
    from .dump import take_dump
    from .errors import BackupError
    from .restore import restore
    from .retention import apply_retention

    settings = context.settings
    catalogue = Catalogue(settings.backup_dir)
    with context.exclusive():
        if args.command == "backup":
            await take_backup(settings, context.live, context.runs, context.user)
        elif args.command == "verify":
            labels = args.labels or [backup.label for backup in catalogue.backups()]
            corrupt = []
            for label in labels:
                try:
                    await verify_backup(settings, catalogue, label, context.user)
                except BackupError as error:
                    log.error("%s", error)
                    corrupt.append(label)
            if corrupt:
                raise BackupError(f"corrupt backups: {', '.join(corrupt)}")
        elif args.command == "restore":
            report = await restore(
                settings,
                context.live,
                context.user,
                context.runs,
                target_time=args.target_time,
                into=args.into,
                timeline=args.timeline,
            )
            print(_switch_over(report, settings.state_dir))
        elif args.command == "drill":
            result = await drill(settings, context.live, context.runs, context.user)
            if not result.succeeded:
                raise BackupError(f"restore drill failed: {result.error}")
        elif args.command == "retention":
            await apply_retention(settings, context.user)
        elif args.command.startswith("offsite-"):
            await _offsite(args, context)
        elif args.command == "disaster-drill":
            from .disaster import disaster_drill

            outcome = await disaster_drill(settings, context.live, context.runs, context.user)
            if not outcome.succeeded:
                raise BackupError(f"disaster drill failed: {outcome.error}")
            print(f"RPO {outcome.rpo_seconds:.1f} s")
            print(f"RTO {outcome.rto_seconds:.1f} s")
        else:
            await take_dump(settings, context.live, context.runs, context.user)
    return 0


async def _offsite(args: argparse.Namespace, context: Context) -> None:
    from .offsite import Offsite

    offsite = Offsite(context.settings, context.user)
    if args.command == "offsite-ship":
        print(f"shipped {await offsite.ship()} WAL file(s)")
    elif args.command == "offsite-verify":
        await offsite.verify()
    else:
        from .offsite_jobs import offsite_backup

        await offsite_backup(offsite, context.runs, args.type)


def _switch_over(report: RestoreReport, state_dir: Path | None) -> str:
    if state_dir is None:
        return _report(report) + (
            "\nTo switch over: stop PostgreSQL, move its data directory aside, move the "
            "restored one into its place and start PostgreSQL."
        )
    state = state_dir.resolve()
    data_dir = report.data_dir
    return (
        _report(report)
        + f"""
To switch over to the restored data:
  1. stop the stack:             make down STATE_DIR={state}
  2. keep the old data aside:    mv {state}/pgdata {state}/pgdata.before-restore
  3. put the restored one there: mv {data_dir} {state}/pgdata
  4. start the stack:            make up STATE_DIR={state}
The stack rewrites the port and settings on start; services reconnect through PgBouncer. The
restored server continues on timeline {report.new_timeline}: take a base backup afterwards
(make backup STATE_DIR={state}) so that later restores start from the new timeline."""
    )


def _report(report: RestoreReport) -> str:
    target = report.target_time.isoformat() if report.target_time else "latest archived WAL"
    warning = ""
    if report.newer_timelines:
        newer = ", ".join(map(str, report.newer_timelines))
        warning = (
            f"\nWARNING: the archive holds newer timeline(s) {newer} than the one followed "
            f"({report.followed_timeline}); if the live server had switched over to one of "
            "them, restore again with --timeline N."
        )
    return f"""
Restored in {report.duration_seconds:.1f} s:
  base backup       {report.backup}
  recovered to      {target} (following timeline {report.followed_timeline})
  last transaction  {report.last_transaction_at or "none replayed"}
  promoted onto     timeline {report.new_timeline}; its WAL is archived once it runs as the
                    live server (nothing was written to the archive)
  data directory    {report.data_dir}  (stopped; recovery target settings removed)
  recovery log      {report.log_file}
The live server was not touched.{warning}"""


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from services.core.entry import check_settings

    from .errors import BackupError
    from .settings import BackupServiceSettings

    if args.command == "list":
        check_settings("services.backup.cli", [BackupServiceSettings])
        try:
            return _list()
        except (BackupError, OSError) as error:
            print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
            return 1

    import asyncio

    from services.core.settings import BackupRoleSettings, DatabaseSettings

    from .context import open_context

    check_settings(
        "services.backup.cli", [BackupServiceSettings, BackupRoleSettings, DatabaseSettings]
    )
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)

    async def _main() -> int:
        async with open_context() as context:
            return await _execute(args, context)

    try:
        return asyncio.run(_main())
    except (BackupError, LookupError, OSError) as error:  # LookupError: no such backup
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
