"""The commands. Each imports what it needs when it runs, so `--help` answers at once."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from . import render
from .environment import load_state_env, state_dir

app = typer.Typer(
    name="botstack",
    help=(
        "The operator's CLI of the bot stack. Reads the services' settings: the environment, "
        "then <state dir>/env of the local stack (BOTSTACK_STATE_DIR, default .stack), then "
        "/run/secrets. Example: botstack health"
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)

ENTITY_HELP = "users, updates, messages, tickets, appointments, payments, outbox, audit, backups"
Json = Annotated[bool, typer.Option("--json", help="print JSON for scripts")]


def _run(coroutine: Any) -> Any:
    from services.core.maintenance.connect import Unreachable

    try:
        return asyncio.run(coroutine)
    except Unreachable as error:
        print(f"error: {error}", file=sys.stderr)
        raise typer.Exit(2) from None


@app.callback()
def _settings() -> None:
    load_state_env(state_dir())


@app.command()
def health(as_json: Json = False) -> None:
    """Each component and why it is or is not healthy; exit 0 all well, 1 degraded, 2 cannot
    reach something it must check.

    Example: botstack health --json | jq '.[] | select(.status != "ok")'
    """
    from .health import gather

    urls = dict(
        item.split("=", 1)
        for item in os.environ.get("BOTSTACK_READY_URLS", "").split(",")
        if "=" in item
    )
    checks = asyncio.run(gather(state_dir(), urls))
    worst = max((check.status for check in checks), default=0)
    if as_json:
        render.print_json(
            [
                {
                    "component": c.component,
                    "status": c.status.name.lower(),
                    "reason": c.reason,
                    "details": c.details,
                }
                for c in checks
            ]
        )
    else:
        styles = {0: "green", 1: "yellow", 2: "red"}
        for check in checks:
            render.line(
                f"{check.status.name.lower():<11} {check.component:<13} {check.reason}",
                styles[int(check.status)],
            )
    raise typer.Exit(int(worst))


@app.command()
def stats(
    as_json: Json = False,
    sample: Annotated[float, typer.Option(help="seconds to sample transactions")] = 1.0,
    slowest: Annotated[int, typer.Option(help="how many of the slowest statements")] = 10,
) -> None:
    """Table and index sizes, row estimates, dead rows, last (auto)vacuum and analyze, unused
    indexes, cache hit ratio, connections by state, transactions per second, and the slowest
    statements (pg_stat_statements), read as the monitoring role.

    Example: botstack stats --sample 5 --slowest 20
    """
    from services.core.maintenance import stats as core_stats
    from services.core.maintenance.connect import as_monitor

    async def collect() -> dict[str, Any]:
        async with as_monitor() as connection:
            return await core_stats.collect(connection, sample_seconds=sample, slowest=slowest)

    data = _run(collect())
    if as_json:
        render.print_json(data)
        return
    render.table("Tables", data["tables"])
    render.table("Unused indexes", data["unused_indexes"])
    render.table("Connections by state", data["connections"])
    ratio = data["cache_hit_ratio"]
    render.line(f"cache hit ratio: {'-' if ratio is None else f'{ratio:.2%}'}")
    render.line(f"transactions per second: {data['transactions_per_second']} ({sample:g} s)")
    if data["slowest_statements"] is None:
        render.line("slowest statements: pg_stat_statements is not installed", "yellow")
    else:
        render.table("Slowest statements (mean ms)", data["slowest_statements"])


@app.command()
def inspect(
    entity: Annotated[
        str,
        typer.Argument(help=ENTITY_HELP),
    ],
    limit: Annotated[int, typer.Option(min=1, max=1000, help="rows, newest first")] = 20,
    since: Annotated[
        datetime | None, typer.Option(help="only rows at or after this time (UTC if no zone)")
    ] = None,
    user_id: Annotated[int | None, typer.Option(help="only this user's rows")] = None,
    show_personal_data: Annotated[
        bool,
        typer.Option(help="also names, message text, payloads; the use is audited"),
    ] = False,
    as_json: Json = False,
) -> None:
    """The newest rows of an entity. Secrets are never shown; personal data only with
    --show-personal-data, which is written to the audit log.

    Example: botstack inspect messages --user-id 42 --since 2026-12-01 --limit 50
    """
    from services.core.maintenance import inspect as core_inspect
    from services.core.maintenance.connect import as_owner

    if entity not in core_inspect.ENTITIES:
        print(
            f"error: no entity {entity!r}; one of: {', '.join(core_inspect.ENTITIES)}",
            file=sys.stderr,
        )
        raise typer.Exit(2)
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    actor = f"cli:{os.environ.get('SUDO_USER') or os.environ.get('USER') or 'operator'}"

    async def fetch() -> list[dict[str, Any]]:
        async with as_owner() as connection:
            return await core_inspect.recent(
                connection,
                entity,
                limit=limit,
                since=since,
                user_id=user_id,
                show_personal_data=show_personal_data,
                actor=actor,
            )

    try:
        rows = _run(fetch())
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        raise typer.Exit(2) from None
    if as_json:
        render.print_json(rows)
    else:
        render.table(f"{entity} (newest {limit})", rows)


@app.command()
def maintenance(
    operations: Annotated[
        str, typer.Option(help="comma-separated: vacuum, analyze, reindex")
    ] = "vacuum,analyze",
    table: Annotated[
        list[str] | None, typer.Option(help="a table (repeatable); default: every table")
    ] = None,
    lock_timeout_ms: Annotated[
        int, typer.Option(min=1, help="give up on a lock after this long, retry, then skip")
    ] = 500,
    statement_timeout: Annotated[float, typer.Option(help="seconds per step")] = 600.0,
    as_json: Json = False,
) -> None:
    """VACUUM, ANALYZE and REINDEX CONCURRENTLY, table by table, with lock_timeout and
    statement_timeout so the bot never waits on it for more than a moment; a table that
    cannot be locked is retried and then skipped. Exit 1 when a step failed or was skipped.

    Example: botstack maintenance --operations analyze,reindex --table outbox
    """
    from services.core.maintenance import vacuum
    from services.core.maintenance.connect import as_owner

    chosen = [op.strip() for op in operations.split(",") if op.strip()]
    unknown = sorted(set(chosen) - set(vacuum.OPERATIONS))
    if unknown or not chosen:
        print(
            f"error: unknown operation(s) {', '.join(unknown) or '(none)'}; "
            f"choose from {', '.join(vacuum.OPERATIONS)}",
            file=sys.stderr,
        )
        raise typer.Exit(2)
    limits = vacuum.Limits(lock_timeout_ms=lock_timeout_ms, statement_timeout_s=statement_timeout)

    def progress(step: vacuum.Step) -> None:
        if not as_json:
            note = f" ({step.detail})" if step.detail else ""
            render.line(
                f"{step.operation:<8} {step.table:<24} {step.outcome:<8} {step.seconds:7.3f} s"
                f"{note}",
                {"done": "", "skipped": "yellow", "failed": "red"}[step.outcome],
            )

    async def run() -> vacuum.MaintenanceReport:
        async with as_owner() as connection:
            known = await vacuum.tables(connection)
            missing = sorted(set(table or ()) - set(known))
            if missing:
                print(f"error: no table {', '.join(missing)}", file=sys.stderr)
                raise typer.Exit(2)
            return await vacuum.run(connection, chosen, table or known, limits, progress)

    report = _run(run())
    if as_json:
        render.print_json([step.__dict__ for step in report.steps])
    else:
        totals: dict[str, float] = {}
        for step in report.steps:
            totals[step.operation] = totals.get(step.operation, 0.0) + step.seconds
        summary = ", ".join(f"{op} {seconds:.2f} s" for op, seconds in totals.items())
        render.line(
            f"summary: {len(report.steps)} steps, {len(report.skipped)} skipped, "
            f"{len(report.failed)} failed; {summary}"
        )
    if report.failed or report.skipped:
        raise typer.Exit(1)


@app.command()
def config(as_json: Json = False) -> None:
    """Every effective setting of every service, with its source (default, environment, env
    file of the local stack, secret file); secrets masked.

    Example: botstack config | grep DB_
    """
    from .settings_report import report

    rows = report()
    if as_json:
        render.print_json(rows)
    else:
        render.table("Settings", rows, ["variable", "value", "source"])


def _backup(*argv: str) -> None:
    """The backup service's own command line (python -m services.backup.cli), same code."""
    from services.backup.cli import main as backup_main

    raise typer.Exit(backup_main(list(argv)))


@app.command()
def backup() -> None:
    """Take a base backup now and verify it.

    Example: botstack backup
    """
    _backup("backup")


@app.command()
def backups(as_json: Json = False) -> None:
    """List the catalogued base backups.

    Example: botstack backups --json
    """
    if not as_json:
        _backup("list")
    from services.backup.catalogue import Catalogue
    from services.backup.settings import BackupServiceSettings

    listed = Catalogue(BackupServiceSettings().backup_dir).backups()
    render.print_json(
        [
            {
                "label": b.label,
                "verification": b.verification.value,
                "timeline": b.timeline,
                "size_bytes": b.size_bytes,
                "finished_at": b.finished_at,
            }
            for b in listed
        ]
    )


@app.command()
def verify(labels: Annotated[list[str] | None, typer.Argument()] = None) -> None:
    """Verify catalogued backups again with pg_verifybackup (default: all); exit 1 if corrupt.

    Example: botstack verify 20261203T040000Z
    """
    _backup("verify", *(labels or []))


@app.command()
def restore(
    target_time: Annotated[
        str | None, typer.Option(help="ISO 8601 time to recover to (no zone: UTC)")
    ] = None,
    into: Annotated[Path | None, typer.Option(help="new directory for the restore")] = None,
    timeline: Annotated[str | None, typer.Option(help="a number or 'latest'")] = None,
) -> None:
    """Restore into a new data directory (point in time, or latest); the live server is not
    touched, and the output says how to switch over.

    Example: botstack restore --target-time '2026-12-03 04:30:00+00:00'
    """
    argv = ["restore"]
    if target_time:
        argv += ["--target-time", target_time]
    if into:
        argv += ["--into", str(into)]
    if timeline:
        argv += ["--timeline", timeline]
    _backup(*argv)


@app.command()
def drill() -> None:
    """Restore the newest backup into a scratch server and check it; exit 1 if it fails.

    Example: botstack drill
    """
    _backup("drill")


@app.command("admin-key")
def admin_key(
    role: Annotated[str, typer.Option(help="viewer, operator or admin")],
    name: Annotated[str, typer.Option(help="the staff member's name")],
) -> None:
    """Make an admin API key (the same code as `make admin-key`); the key is the last line.

    Example: botstack admin-key --role admin --name ops
    """
    from services.admin_api.keys import main as keys_main

    raise typer.Exit(keys_main(["create", "--role", role, "--name", name]) or 0)


def main() -> None:
    app()
