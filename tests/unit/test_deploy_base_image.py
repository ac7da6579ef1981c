"""The base image `make deploy-test` makes with debootstrap when no registry answers is as slim
as the official one: no manuals, info pages or translations, documentation but copyrights."""

from __future__ import annotations

from pathlib import Path

from infra.deploy_test import slim


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
