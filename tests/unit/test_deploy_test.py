"""`make deploy-test`'s own choices: the base image it makes with debootstrap when no registry
answers is as slim as the official one (no manuals, info pages or translations, documentation
but copyrights), and its host ports are never taken by an outgoing connection."""

from __future__ import annotations

from pathlib import Path

from infra.deploy_test import PORTS, slim


def test_slim_keeps_the_copyrights_and_drops_manuals_and_translations(tmp_path: Path) -> None:
    files = {
        "usr/share/doc/libc6/copyright": True,
        "usr/share/doc/libc6/changelog.Debian.gz": False,
        "usr/share/doc/apt/examples/sources.list": False,
        "usr/share/man/man1/ls.1.gz": False,
        "usr/share/locale/de/LC_MESSAGES/apt.mo": False,
        "usr/share/info/grep.info.gz": False,
        "usr/share/zoneinfo/UTC": True,
        "usr/bin/apt": True,
    }
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    slim(tmp_path)
    assert {name: (tmp_path / name).exists() for name in files} == files
    # The directories stay: dpkg expects them.
    assert (tmp_path / "usr/share/man").is_dir() and (tmp_path / "usr/share/locale").is_dir()


def test_the_published_ports_sit_below_the_ephemeral_range() -> None:
    # Linux hands out local ports of outgoing connections from 32768 (ip_local_port_range):
    # a listener there can find its port taken by a client, as 40302 once was.
    assert all(1024 <= port < 32768 for port in PORTS.values()), PORTS
