"""`botstack health`: every component's state and why, gathered from PostgreSQL (via
services.core.maintenance.health), PgBouncer, the services' readiness endpoints, the backup
catalogue and the last drill, and the disks."""

from __future__ import annotations

import asyncio
import json
import shutil
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from services.core.maintenance import health
from services.core.maintenance.connect import Unreachable, as_monitor, as_owner
from services.core.maintenance.health import Check, Status

# A disk this full is degraded: WAL and backups need room to keep working.
DISK_FULL_SHARE = 0.9


def ready_urls(state_dir: Path, configured: dict[str, str]) -> dict[str, str]:
    """The services' readiness URLs: configured (BOTSTACK_READY_URLS, e.g. in compose), else
    the local stack's endpoints.json."""
    if configured:
        return configured
    try:
        endpoints = json.loads((state_dir / "endpoints.json").read_text())
    except (OSError, ValueError):
        return {}
    keys = {"bot": "bot_metrics_url", "admin-api": "admin_api_url", "backup": "backup_url"}
    return {
        name: endpoints[key].rstrip("/") + "/health/ready"
        for name, key in keys.items()
        if key in endpoints
    }


def _http(name: str, url: str) -> Check:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return Check(name, Status.OK, f"ready ({url})", {"status": response.status})
    except urllib.error.HTTPError as error:
        body = " ".join(error.read(300).decode(errors="replace").split())
        return Check(name, Status.DEGRADED, f"not ready: HTTP {error.code} {body}", {})
    except OSError as error:
        reason = getattr(error, "reason", error)
        return Check(name, Status.UNREACHABLE, f"unreachable at {url}: {reason}", {})


async def _database() -> list[Check]:
    try:
        async with as_monitor() as connection:
            checks = await health.postgres(connection)
            data_dir = await health.data_directory(connection)
    except Unreachable as error:
        return [Check("postgresql", Status.UNREACHABLE, str(error), {})]
    try:
        async with as_owner() as connection:
            checks.append(await health.outbox(connection))
    except Unreachable as error:
        checks.append(Check("outbox", Status.UNREACHABLE, str(error), {}))
    checks.append(_disk("disk:data", data_dir))
    checks.append(_disk("disk:wal", data_dir / "pg_wal"))
    return checks


def _disk(name: str, path: Path) -> Check:
    try:
        usage = shutil.disk_usage(path)
    except OSError as error:
        return Check(name, Status.UNREACHABLE, f"{path}: {error.strerror}", {})
    share = usage.used / usage.total
    reason = f"{share:.0%} used, {usage.free / 1e9:.1f} GB free ({path})"
    status = Status.DEGRADED if share >= DISK_FULL_SHARE else Status.OK
    return Check(name, status, reason, {"used_share": round(share, 3), "free_bytes": usage.free})


def _backups() -> list[Check]:
    from services.backup.catalogue import Catalogue
    from services.backup.drill import load_last_drill
    from services.backup.errors import BackupError
    from services.backup.settings import BackupServiceSettings

    settings = BackupServiceSettings()
    try:
        catalogue = Catalogue(settings.backup_dir)
        archive = settings.archive_dir
    except BackupError as error:
        return [Check("backups", Status.UNREACHABLE, str(error), {})]
    checks = [_disk("disk:archive", archive), _disk("disk:backups", settings.backup_dir)]
    newest = catalogue.newest()
    if newest is None:
        checks.append(Check("backups", Status.DEGRADED, "no verified base backup", {}))
    else:
        age = (datetime.now(UTC) - newest.finished_at).total_seconds()
        late = age > 2 * settings.backup_interval_seconds
        reason = f"newest verified {newest.label}, {age / 3600:.1f} h old"
        checks.append(
            Check("backups", Status.DEGRADED if late else Status.OK, reason, {"age_s": age})
        )
    drill = load_last_drill(settings)
    if drill is None:
        checks.append(Check("drill", Status.OK, "no drill yet", {}))
    elif drill.succeeded:
        checks.append(Check("drill", Status.OK, f"succeeded {drill.started_at:%Y-%m-%d}", {}))
    else:
        reason = f"failed {drill.started_at:%Y-%m-%d}: {drill.error}"
        checks.append(Check("drill", Status.DEGRADED, reason, {}))
    return checks


async def gather(state_dir: Path, configured_urls: dict[str, str]) -> list[Check]:
    from services.backup.settings import BackupServiceSettings
    from services.core.settings import DatabaseSettings, PgBouncerSettings

    database = DatabaseSettings()
    bouncer = PgBouncerSettings()
    psql = BackupServiceSettings().pg_bindir / "psql"
    checks = await _database()
    checks.append(
        await health.pgbouncer(
            psql,
            database.host,
            database.port,
            bouncer.stats_user,
            bouncer.stats_password,
            database.name,
        )
    )
    urls = ready_urls(state_dir, configured_urls)
    checks += await asyncio.gather(
        *(asyncio.to_thread(_http, name, url) for name, url in urls.items())
    )
    checks += _backups()
    return checks
