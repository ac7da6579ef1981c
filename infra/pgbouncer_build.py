"""Building the pinned PgBouncer release from Debian's source package, once per user.

Debian 12 ships PgBouncer 1.18, too old for protocol-level prepared statements. Debian 13
(trixie) carries 1.24.1 with Debian's security patches; its source package builds on bookworm
with bookworm's libraries in about ten seconds. The result lives in the user's cache, outside
any repository or state directory, and is reused by every later run.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

from infra.binaries import PgBouncerBinary, pgbouncer_version
from infra.system import Apt, StackError, file_lock, probe, run, shown
from infra.topology import versions

log = logging.getLogger("infra.stack")

VERSION = versions()["PGBOUNCER_VERSION"]  # compose.yaml's, as its image builds it
BUILD_DEPENDENCIES = (
    "dpkg-dev",  # apt-get source unpacks and patches with dpkg-source
    "gcc",
    "make",
    "libc6-dev",
    "pkg-config",
    "libevent-dev",
    "libc-ares-dev",
    "libssl-dev",
)
TRIXIE_SOURCES = Path("/etc/apt/sources.list.d/botstack-trixie-src.sources")
TRIXIE_SOURCES_TEXT = """\
# Added by infra/stack.py to build PgBouncer from Debian trixie's source package.
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "botstack"


def ensure_built(apt: Apt) -> PgBouncerBinary:
    """PgBouncer VERSION from the cache, building it first when it is not there."""
    target = cache_dir() / f"pgbouncer-{VERSION}"
    binary = target / "pgbouncer"
    if pgbouncer_version(binary) == VERSION:
        return PgBouncerBinary(binary, VERSION)
    # Two concurrent runs (parallel test workers) must not build into the same place.
    with file_lock(cache_dir() / f"pgbouncer-{VERSION}.lock"):
        if pgbouncer_version(binary) != VERSION:
            _build(apt, target)
    return PgBouncerBinary(binary, VERSION)


def _build(apt: Apt, target: Path) -> None:
    log.info("building PgBouncer %s from Debian source (once) ...", VERSION)
    started = time.monotonic()
    apt.install(BUILD_DEPENDENCIES, f"the build dependencies of PgBouncer {VERSION}")
    package_version = _source_version(apt)
    build_log = cache_dir() / f"pgbouncer-{VERSION}-build.log"
    build_log.write_text("")
    failure = f"building PgBouncer {VERSION} failed"
    work = Path(tempfile.mkdtemp(dir=cache_dir(), prefix=f"pgbouncer-{VERSION}-build-"))
    try:
        log.info("  apt-get source pgbouncer=%s", package_version)
        run(
            ["apt-get", "source", f"pgbouncer={package_version}"],
            failure=failure,
            cwd=work,
            log_file=build_log,
        )
        source = work / f"pgbouncer-{VERSION}"
        log.info("  ./configure && make")
        run(["./configure"], failure=failure, cwd=source, log_file=build_log)
        run(["make", f"-j{os.cpu_count() or 1}"], failure=failure, cwd=source, log_file=build_log)
        built = pgbouncer_version(source / "pgbouncer")
        if built != VERSION:
            raise StackError(f"{failure}: the binary reports {built}; see {shown(build_log)}")
        # Publish the finished tree in one rename so no run ever sees a half-built one.
        shutil.rmtree(target, ignore_errors=True)
        source.rename(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log.info("  built %s in %.0f s", shown(target / "pgbouncer"), time.monotonic() - started)


def _source_version(apt: Apt) -> str:
    """The Debian version (e.g. 1.24.1-1+deb13u2) of the pinned release in trixie's sources."""
    version = _offered_version()
    if version is None and apt.can_install():
        current = TRIXIE_SOURCES.read_text() if TRIXIE_SOURCES.exists() else ""
        if current != TRIXIE_SOURCES_TEXT:
            log.info("  adding Debian trixie sources: %s", TRIXIE_SOURCES)
            TRIXIE_SOURCES.write_text(TRIXIE_SOURCES_TEXT)
        apt.update()
        version = _offered_version()
    if version is not None:
        return version
    if not apt.can_install():
        raise StackError(
            f"building PgBouncer {VERSION} needs Debian trixie's source index; as root write "
            f"{TRIXIE_SOURCES} (Types: deb-src, URIs: http://deb.debian.org/debian, Suites: "
            "trixie, Components: main, Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg)"
            ", run apt-get update, then rerun"
        )
    raise StackError(f"Debian trixie's sources no longer offer pgbouncer {VERSION}")


def _offered_version() -> str | None:
    result = probe(["apt-cache", "showsrc", "pgbouncer"])
    if result.returncode != 0:
        return None
    pattern = rf"^Version: ({re.escape(VERSION)}-\S+)$"
    versions = re.findall(pattern, result.stdout, flags=re.MULTILINE)
    return versions[0] if versions else None
