"""WAL archiving: the archive command stores compressed copies atomically, never overwrites a
different file, fails loudly; with the archive unwritable the metrics show it and, once it is
writable again, every segment arrives (no gap in the archive)."""

from __future__ import annotations

import asyncio
import gzip
import os
import subprocess
import time
from pathlib import Path

import asyncpg
import pytest

from infra.postgres_server import TEMPLATES
from infra.stack import LocalStack
from services.backup.metrics import BackupCollector
from services.core.os_user import ServiceUser
from tests.backup.conftest import ContextFactory, add_flag, scrape

SCRIPT = TEMPLATES / "archive-wal.sh"
SEGMENT = "000000010000000000000042"


def archive(
    source: Path, name: str, directory: Path, user: ServiceUser
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*user.prefix, "sh", str(SCRIPT), str(source), name, str(directory)],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def scratch(stack: LocalStack) -> Path:
    """A directory the service user owns (the test stack's state directory is reachable)."""
    directory = stack.paths.root / "test-archive-script"
    subprocess.run(["rm", "-rf", str(directory)], check=True)
    directory.mkdir(mode=0o755)
    user = ServiceUser.detect()
    user.own(directory)
    (directory / "archive").mkdir(mode=0o700)
    user.own(directory / "archive")
    return directory


def test_archived_segment_is_compressed_and_complete(scratch: Path) -> None:
    segment = scratch / SEGMENT
    segment.write_bytes(os.urandom(1024) + bytes(16 * 1024 * 1024 - 1024))
    result = archive(segment, SEGMENT, scratch / "archive", ServiceUser.detect())
    assert result.returncode == 0, result.stderr
    stored = scratch / "archive" / f"{SEGMENT}.gz"
    assert stored.stat().st_size < segment.stat().st_size / 10
    assert gzip.decompress(stored.read_bytes()) == segment.read_bytes()
    # Nothing else is left behind: no temporary file beside the archived one.
    assert [p.name for p in (scratch / "archive").iterdir()] == [f"{SEGMENT}.gz"]


def test_same_segment_again_succeeds_but_different_content_is_refused(scratch: Path) -> None:
    user = ServiceUser.detect()
    segment = scratch / SEGMENT
    segment.write_bytes(b"first" * 1000)
    assert archive(segment, SEGMENT, scratch / "archive", user).returncode == 0
    stored = (scratch / "archive" / f"{SEGMENT}.gz").read_bytes()

    # PostgreSQL retrying a segment it already archived (a crash before it noted success).
    assert archive(segment, SEGMENT, scratch / "archive", user).returncode == 0

    segment.write_bytes(b"other" * 1000)
    refused = archive(segment, SEGMENT, scratch / "archive", user)
    assert refused.returncode != 0
    assert "different content" in refused.stderr
    assert (scratch / "archive" / f"{SEGMENT}.gz").read_bytes() == stored


def test_unwritable_archive_fails_with_non_zero_status(scratch: Path) -> None:
    segment = scratch / SEGMENT
    segment.write_bytes(b"wal" * 1000)
    os.chmod(scratch / "archive", 0o500)
    result = archive(segment, SEGMENT, scratch / "archive", ServiceUser.detect())
    os.chmod(scratch / "archive", 0o700)
    assert result.returncode != 0
    assert not (scratch / "archive" / f"{SEGMENT}.gz").exists()


def segment_numbers(archive_dir: Path, timeline: int) -> list[int]:
    """Positions of the archived WAL segments of one timeline (16 MB segments: 256 a log)."""
    numbers = []
    for path in archive_dir.glob(f"{timeline:08X}" + "?" * 16 + ".gz"):
        name = path.name[:24]
        numbers.append(int(name[8:16], 16) * 0x100 + int(name[16:24], 16))
    return sorted(numbers)


async def switch(owner: asyncpg.Connection, key: str, live_switch: asyncpg.Connection) -> str:
    await add_flag(owner, key)
    return str(await live_switch.fetchval("SELECT pg_walfile_name(pg_switch_wal())"))


async def test_archive_failure_shows_in_metrics_and_loses_no_segment(
    stack: LocalStack,
    endpoints: dict[str, str],
    owner: asyncpg.Connection,
    make_context: ContextFactory,
) -> None:
    context = await make_context("archive")
    archive_dir = stack.paths.wal_archive
    backup = await asyncpg.connect(endpoints["backup_dsn"])
    try:
        before = await scrape(context)
        os.chmod(archive_dir, 0o500)
        try:
            switched = [await switch(owner, f"archive-fail-{i}", backup) for i in range(3)]
            failed = before["backup_wal_archive_failed_total"]
            deadline = time.monotonic() + 30
            while (metrics := await scrape(context))["backup_wal_archive_failed_total"] <= failed:
                assert time.monotonic() < deadline, "the archiver never reported a failure"
                await asyncio.sleep(0.5)
            assert metrics["backup_wal_archive_failing"] == 1.0
            assert not (archive_dir / f"{switched[0]}.gz").exists()
        finally:
            os.chmod(archive_dir, 0o700)
        # A new segment wakes the archiver, which retries the oldest waiting one first.
        last = await switch(owner, "archive-fail-after", backup)
        deadline = time.monotonic() + 60
        while not (archive_dir / f"{last}.gz").exists():
            assert time.monotonic() < deadline, f"{last} was not archived once writable"
            await asyncio.sleep(0.5)
    finally:
        await backup.close()
    metrics = await scrape(context)
    assert metrics["backup_wal_archive_failing"] == 0.0
    assert metrics["backup_wal_archived_total"] > before["backup_wal_archived_total"]
    assert metrics["backup_wal_seconds_since_last_archived"] < 60
    numbers = segment_numbers(archive_dir, 1)
    assert numbers == list(range(numbers[0], numbers[-1] + 1)), "a WAL segment is missing"
    for name in [*switched, last]:
        assert (archive_dir / f"{name}.gz").exists()


def collected(collector: BackupCollector) -> dict[str, float]:
    return {
        sample.name: sample.value for family in collector.collect() for sample in family.samples
    }


async def test_archive_freshness_and_counts_survive_a_postgres_crash(
    stack: LocalStack, endpoints: dict[str, str], make_context: ContextFactory
) -> None:
    """A crash resets pg_stat_archiver; the freshness series must not vanish and the counter
    must not drop, or an alert on them goes silent exactly when it matters."""
    context = await make_context("crash")
    collector = BackupCollector(context.settings, context.live)
    owner = await asyncpg.connect(endpoints["postgres_dsn"])
    try:
        await add_flag(owner, "archive-crash")
    finally:
        await owner.close()
    await context.live.switch_wal_and_wait()
    await collector.refresh()
    before = collected(collector)
    assert before["backup_wal_archived_total"] > 0
    stack.stop_postgres(crash=True)
    try:
        await collector.refresh()
        down = collected(collector)
        assert down["backup_postgres_up"] == 0.0
        assert down["backup_wal_seconds_since_last_archived"] >= 0  # still there, from the files
    finally:
        stack.start_postgres()
    await collector.refresh()
    after = collected(collector)
    assert after["backup_postgres_up"] == 1.0
    assert after["backup_wal_archived_total"] >= before["backup_wal_archived_total"]
    assert (
        after["backup_wal_last_archived_timestamp_seconds"]
        >= before["backup_wal_last_archived_timestamp_seconds"]
    )


async def test_a_restarted_server_is_checkpointed_so_archive_timeout_works(
    stack: LocalStack, make_context: ContextFactory
) -> None:
    """PostgreSQL switches segments on archive_timeout only after a first checkpoint since
    start-up; the backup service's tick makes that checkpoint at once."""
    context = await make_context("arm")
    stack.stop_postgres()
    stack.start_postgres()
    assert await context.live.arm_archive_timeout() is True
    assert await context.live.arm_archive_timeout() is False  # once per start
