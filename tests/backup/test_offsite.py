"""The offsite repository against a real S3 server (SeaweedFS's weed mini over verified TLS)
and the test stack's PostgreSQL: backups and WAL offsite, a point-in-time restore from the
offsite repository alone, encryption at rest, wrong credentials, an outage of the object store,
the disaster drill, and a corrupted object."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import secrets
import shutil
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from infra.seaweedfs import BUCKET, PORT_OFFSETS, PORTS_USED, ObjectStore, bindable
from infra.stack import LocalStack
from services.backup.context import Context
from services.backup.disaster import disaster_drill
from services.backup.errors import BackupError
from services.backup.live import LiveServer
from services.backup.offsite import (
    Offsite,
    first_unshipped,
    load_state,
    offsite_health,
    pending,
)
from services.backup.offsite_jobs import offsite_backup
from services.backup.settings import BackupServiceSettings
from services.core.os_user import ServiceUser
from tests.backup.conftest import ContextFactory, add_flag, flags_in, scrape
from tests.conftest import TEST_PORT_BASE

# weed mini's ports: its own range (TEST_OFFSITE_PORT_BASE, and the next two of 14 ports), by
# default just past the stack's.
PORT_BASE = int(os.environ.get("TEST_OFFSITE_PORT_BASE", str(TEST_PORT_BASE + 3000)))


@pytest.fixture(scope="module")
def store(stack: LocalStack) -> Iterator[ObjectStore]:
    root = stack.paths.root / "object-store-test"
    shutil.rmtree(root, ignore_errors=True)
    # Three ranges to choose from: a port can be some long-lived connection's source port.
    bases = [PORT_BASE + k * PORTS_USED for k in range(3)]
    store = ObjectStore(root, next((base for base in bases if bindable(base)), PORT_BASE))
    store.prepare(reader=ServiceUser.detect())
    store.start()
    yield store
    store.stop()


def offsite_settings(
    context: Context, stack: LocalStack, store: ObjectStore, name: str
) -> BackupServiceSettings:
    passphrase = context.settings.backup_dir.parent / f"{name}-passphrase"
    passphrase.parent.mkdir(parents=True, exist_ok=True)
    passphrase.write_text(secrets.token_urlsafe(32) + "\n")
    passphrase.chmod(0o600)
    context.user.own(passphrase)
    values = {key.removeprefix("BACKUP_SERVICE_").lower(): v for key, v in store.settings().items()}
    return context.settings.model_copy(
        update={
            **values,
            "offsite_key_file": Path(values["offsite_key_file"]),
            "offsite_secret_file": Path(values["offsite_secret_file"]),
            "offsite_ca_file": Path(values["offsite_ca_file"]),
            "offsite_passphrase_file": passphrase,
            "offsite_path": f"/test-{name}",
            "offsite_push_timeout_seconds": 20,
            "pgdata": stack.paths.pgdata,
            "pg_socket_dir": stack.paths.run,
        }
    )


async def offsite_context(
    make_context: ContextFactory, stack: LocalStack, store: ObjectStore, name: str
) -> Context:
    context = await make_context(name)
    settings = offsite_settings(context, stack, store, name)
    context.settings.backup_dir.mkdir(parents=True, exist_ok=True)
    context.user.own(context.settings.backup_dir)
    live = LiveServer(settings, context.live.role)
    return replace(context, settings=settings, live=live)


def filer(store: ObjectStore, path: str) -> str:
    return f"http://127.0.0.1:{store.port_base + PORT_OFFSETS['filer.port']}{path}"


def bucket_files(store: ObjectStore, prefix: str) -> dict[str, int]:
    """Every object under prefix in the bucket, with its size (the filer, on loopback)."""
    found: dict[str, int] = {}
    pending = [f"/buckets/{BUCKET}{prefix}"]
    while pending:
        directory = pending.pop()
        request = urllib.request.Request(
            filer(store, directory + "/?limit=10000"), headers={"Accept": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as reply:
            entries: list[dict[str, Any]] = json.load(reply).get("Entries") or []
        for entry in entries:
            if entry["Mode"] & 0x80000000:  # a directory
                pending.append(entry["FullPath"])
            else:
                found[entry["FullPath"]] = int(entry["FileSize"])
    return found


def read_object(store: ObjectStore, path: str) -> bytes:
    with urllib.request.urlopen(filer(store, path), timeout=10) as reply:
        data: bytes = reply.read()
    return data


def write_object(store: ObjectStore, path: str, data: bytes) -> None:
    request = urllib.request.Request(filer(store, path), data=data, method="PUT")
    with urllib.request.urlopen(request, timeout=10):
        pass


async def test_point_in_time_restore_from_offsite_alone_is_exact_and_encrypted(
    make_context: ContextFactory,
    stack: LocalStack,
    store: ObjectStore,
    owner: asyncpg.Connection,
) -> None:
    context = await offsite_context(make_context, stack, store, "pitr")
    offsite = Offsite(context.settings, context.user)
    label = await offsite_backup(offsite, context.runs, "full")
    prefix = f"offsite-{secrets.token_hex(4)}-"
    await add_flag(owner, prefix + "before")
    await asyncio.sleep(1.0)  # commit timestamps a clear second apart from the target
    target = datetime.now(UTC)
    await asyncio.sleep(1.0)
    await add_flag(owner, prefix + "after")
    await context.live.switch_wal_and_wait()
    shipped = await offsite.ship()
    assert shipped >= 1

    # A restore that knows only the offsite repository, into an empty directory.
    into = context.settings.backup_dir / "restore-pitr" / "data"
    await offsite.restore(into, target_time=target)
    auto_conf = (into / "postgresql.auto.conf").read_text()
    assert "pgbackrest" in auto_conf and str(stack.paths.wal_archive) not in auto_conf
    assert await flags_in(context, into, prefix, promoted=True) == {prefix + "before"}

    # The objects are ciphertext: a WAL segment holding the rows, read from the bucket.
    segment = offsite.load_state().last_shipped
    assert segment is not None
    local = gzip.decompress((stack.paths.wal_archive / f"{segment}.gz").read_bytes())
    assert (prefix + "after").encode() in local  # the plaintext is there to be found
    objects = bucket_files(store, "/test-pitr/archive")
    [path] = [p for p in objects if p.rsplit("/", 1)[-1].startswith(segment)]
    stored = read_object(store, path)
    assert stored.startswith(b"Salted__")  # OpenSSL's aes-256-cbc envelope
    assert (prefix + "after").encode() not in stored and prefix.encode() not in stored
    assert any(f"/botstack/{label}/" in p for p in bucket_files(store, "/test-pitr/backup"))

    rows = await owner.fetch(
        "SELECT status, details FROM backup_runs WHERE kind = 'offsite' AND label = 'full' "
        "ORDER BY id DESC LIMIT 1"
    )
    assert rows and rows[0]["status"] == "succeeded"
    samples = await scrape(context)
    assert samples["backup_offsite_configured"] == 1
    assert samples["backup_offsite_verify_last_success"] == 1
    assert 'backup_repository_newest_verified_timestamp_seconds{repository="offsite"}' in samples


async def test_wrong_credentials_name_the_setting_and_never_the_secret(
    make_context: ContextFactory, stack: LocalStack, store: ObjectStore
) -> None:
    context = await offsite_context(make_context, stack, store, "badkey")
    wrong = context.settings.backup_dir.parent / "badkey-secret"
    wrong_secret = secrets.token_urlsafe(24)
    wrong.write_text(wrong_secret + "\n")
    context.user.own(wrong)
    settings = context.settings.model_copy(update={"offsite_secret_file": wrong})
    with pytest.raises(BackupError) as failure:
        await Offsite(settings, context.user).ensure_stanza()
    message = str(failure.value)
    assert "BACKUP_SERVICE_OFFSITE_SECRET_FILE" in message
    assert wrong_secret not in message
    assert store.secret_file.read_text().strip() not in message


async def test_outage_keeps_local_archiving_then_catches_up_and_the_disaster_drill_passes(
    make_context: ContextFactory,
    stack: LocalStack,
    store: ObjectStore,
    owner: asyncpg.Connection,
) -> None:
    context = await offsite_context(make_context, stack, store, "outage")
    offsite = Offsite(context.settings, context.user)
    await offsite_backup(offsite, context.runs, "full")
    samples = await scrape(context)
    assert samples["backup_offsite_lag_seconds"] == 0
    assert samples["backup_offsite_ship_failing"] == 0
    # /health/ready's offsite report: OK with a verified backup, FAILING while the store is
    # down (with pgBackRest's reason), OK again once the next pass has caught up.
    assert offsite_health(context.settings)["status"] == "OK"

    store.stop()
    try:
        prefix = f"outage-{secrets.token_hex(4)}-"
        await add_flag(owner, prefix + "during")
        # PostgreSQL archives locally as before: the object store is not in its path.
        await context.live.switch_wal_and_wait()
        with pytest.raises(BackupError):
            await offsite.ship()
        await asyncio.sleep(1.1)  # the unshipped file's age is whole seconds past zero
        samples = await scrape(context)
        assert samples["backup_offsite_ship_failing"] == 1
        assert samples["backup_offsite_lag_seconds"] > 0
        assert samples["backup_offsite_lag_bytes"] > 0
        health = offsite_health(context.settings)
        assert health["status"] == "FAILING" and "archive-push" in health["error"], health
    finally:
        store.start()

    assert await offsite.ship() >= 1
    samples = await scrape(context)
    assert samples["backup_offsite_ship_failing"] == 0
    assert samples["backup_offsite_lag_seconds"] == 0
    assert offsite_health(context.settings)["status"] == "OK"

    result = await disaster_drill(context.settings, context.live, context.runs, context.user)
    assert result.succeeded, result.error
    assert result.counts_enforced
    assert result.row_counts["feature_flags"] == result.live_row_counts["feature_flags"]
    assert result.rpo_seconds is not None and result.rpo_seconds >= 0
    assert result.rto_seconds is not None and result.rto_seconds > 0
    samples = await scrape(context)
    assert samples["backup_disaster_drill_last_success"] == 1
    assert samples["backup_disaster_drill_rto_seconds"] == result.rto_seconds
    row = await owner.fetchrow(
        "SELECT status FROM backup_runs WHERE kind = 'dr' ORDER BY id DESC LIMIT 1"
    )
    assert row is not None and row["status"] == "succeeded"


async def test_a_corrupted_object_fails_verify_and_the_disaster_drill(
    make_context: ContextFactory, stack: LocalStack, store: ObjectStore
) -> None:
    context = await offsite_context(make_context, stack, store, "corrupt")
    offsite = Offsite(context.settings, context.user)
    label = await offsite_backup(offsite, context.runs, "full")
    files = bucket_files(store, f"/test-corrupt/backup/botstack/{label}/pg_data")
    path = max(files, key=lambda p: files[p])  # the largest relation file
    data = bytearray(read_object(store, path))
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(b ^ 0xFF for b in data[middle : middle + 64])
    write_object(store, path, bytes(data))

    with pytest.raises(BackupError, match="offsite verify"):
        await offsite.verify()
    result = await disaster_drill(context.settings, context.live, context.runs, context.user)
    assert not result.succeeded
    assert result.error
    samples = await scrape(context)
    assert samples["backup_offsite_verify_last_success"] == 0
    assert samples["backup_disaster_drill_last_success"] == 0
    assert offsite_health(context.settings)["status"] == "FAILING"


def test_a_backup_label_archived_before_its_segment_does_not_hide_the_segment(
    tmp_path: Path,
) -> None:
    """pg_backup_stop archives <segment>.<offset>.backup before <segment> itself, and the
    label's name sorts after the segment's: both must still be shipped, each once."""
    settings = BackupServiceSettings(
        dir=tmp_path / "backups",
        wal_archive=tmp_path / "archive",
        offsite_endpoint="127.0.0.1:1",
        offsite_bucket="b",
        offsite_key_file=tmp_path / "k",
        offsite_secret_file=tmp_path / "s",
        offsite_passphrase_file=tmp_path / "p",
    )
    settings.archive_dir.mkdir()
    segment_c, segment_d = "00000001000000000000000C", "00000001000000000000000D"
    label = f"{segment_d}.00000028.backup"
    for name in (segment_c, label):
        (settings.archive_dir / f"{name}.gz").write_bytes(b"")
    state = load_state(settings)
    state.last_shipped, state.shipped_others = segment_c, [label]  # shipped C and the label
    (settings.archive_dir / f"{segment_d}.gz").write_bytes(b"")  # D arrives afterwards
    assert [entry.name for entry in pending(settings, state)] == [f"{segment_d}.gz"]
    # Saved state: local retention keeps D, the oldest segment not offsite.
    Offsite(settings, ServiceUser.detect()).save_state(state)
    assert first_unshipped(settings) == segment_d
