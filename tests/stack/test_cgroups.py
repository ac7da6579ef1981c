"""The memory budget of the local stack (infra/cgroups.py): compose.yaml's limits, groups a
process is born in, and a limit that really kills."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from infra.cgroups import LOCAL_TO_COMPOSE, MemoryCgroups, compose_limits, parse_memory
from infra.stack import LocalStack
from infra.system import StackError
from loadtests.sampler import ProcessSource

WHY_NOT = MemoryCgroups.unavailable()


def test_limits_are_compose_yamls() -> None:
    limits = compose_limits()
    assert limits["bot"] == parse_memory("320M") == 320 * 1024**2
    assert set(LOCAL_TO_COMPOSE.values()) <= set(limits)
    assert sum(limits.values()) <= 2 * 1024**3


@pytest.fixture
def groups() -> object:
    if WHY_NOT is not None:
        pytest.fail(f"cgroups cannot be written here: {WHY_NOT}")
    cgroups = MemoryCgroups("botstack-pytest", {"bot": 64 * 1024**2})
    cgroups.remove()
    cgroups.create()
    yield cgroups
    cgroups.remove()


def test_a_process_is_born_in_its_group_and_the_starter_returns(groups: MemoryCgroups) -> None:
    before = Path("/proc/self/cgroup").read_text()
    with groups.entered("bot"):
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    try:
        assert child.pid in groups.processes("bot")
        assert Path("/proc/self/cgroup").read_text() == before
        # A name that stands for no compose service (the stand-in) is left where it is.
        with groups.entered("telegram-api"):
            assert Path("/proc/self/cgroup").read_text() == before
    finally:
        child.kill()
        child.wait()


def test_past_its_limit_a_process_is_oom_killed(groups: MemoryCgroups) -> None:
    probe = groups.oom_probe()
    assert probe.killed, probe.detail
    with groups.entered("bot"):  # only while it forks: the OOM killer picks within the group
        hog = subprocess.Popen(
            [sys.executable, "-c", "blocks = [bytearray(1 << 20) for _ in range(200)]"]
        )
    assert hog.wait(timeout=60) == -9
    sample = groups.sample("bot")
    assert sample.oom_kills == 1


def test_after_a_probe_removing_the_groups_leaves_none_behind(groups: MemoryCgroups) -> None:
    groups.oom_probe()
    groups.remove()
    # The probe's cpuacct group was left, and with it the parent: one more each run.
    assert not groups.memory_dir().exists()
    assert not groups.cpu_dir().exists()


def test_without_cgroups_the_services_are_measured_from_proc(stack: LocalStack) -> None:
    """The load runs' fallback where cgroups cannot be written: each service's process tree."""
    source = ProcessSource(stack.paths)
    bot, postgres = source.sample("bot"), source.sample("postgres")
    assert bot.rss > 50 * 1024**2  # a Python process with aiogram loaded
    assert postgres.rss > 0 and postgres.cpu_seconds > 0


def test_with_cpus_the_services_run_on_theirs_and_the_rest_on_the_others() -> None:
    """`loadtest CPUS=1`: the stack's services on the first CPU, the stand-in and Locust on
    the others, as the users and Telegram are not on the VPS."""
    if WHY_NOT is not None:
        pytest.fail(f"cgroups cannot be written here: {WHY_NOT}")
    if len(os.sched_getaffinity(0)) < 2:
        pytest.fail("this test needs two CPUs at least")
    groups = MemoryCgroups("botstack-pytest-cpus", {"bot": 64 * 1024**2}, cpus=1)
    groups.remove()
    groups.create()
    affinity = "import os, time; print(sorted(os.sched_getaffinity(0)), flush=True); time.sleep(5)"
    children = []
    try:
        for name in ("bot", "telegram-api"):
            with groups.entered(name):
                children.append(
                    subprocess.Popen([sys.executable, "-c", affinity], stdout=subprocess.PIPE)
                )
        with groups.outside():
            children.append(
                subprocess.Popen([sys.executable, "-c", affinity], stdout=subprocess.PIPE)
            )
        seen = [child.stdout.readline().decode().strip() for child in children if child.stdout]
        available = sorted(os.sched_getaffinity(0))
        assert seen[0] == str(available[:1])
        assert seen[1] == seen[2] == str(available[1:])
    finally:
        for child in children:
            child.kill()
            child.wait()
        groups.remove()
    with pytest.raises(StackError, match="cannot confine"):
        MemoryCgroups("botstack-pytest-cpus", {}, cpus=len(os.sched_getaffinity(0))).create()
    groups.remove()
