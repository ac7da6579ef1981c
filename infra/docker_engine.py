"""A Docker engine for `make deploy-test` and `make up`: the one that answers, else Debian's
docker.io started here (installed first when missing, as root on Debian), with its state under
a directory of ours; and what it changes on the host (iptables chains and rules, the docker0
bridge, IP forwarding) undone when it stops."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from infra.system import StackError

TABLES = ("filter", "nat")


def answers(env: dict[str, str] | None = None) -> bool:
    """True when `docker info` reaches an engine."""
    if shutil.which("docker") is None:
        return False
    result = subprocess.run(
        ["docker", "info", "--format", "{{.ServerVersion}}"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    return result.returncode == 0


def install_docker() -> None:
    """Debian's docker.io, as root; refused in one line anywhere else."""
    if os.geteuid() != 0 or not Path("/etc/debian_version").exists():
        raise StackError(
            "no Docker engine answers and docker.io can be installed here only as root on "
            "Debian: install Docker (https://docs.docker.com/engine/install/) and rerun"
        )
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    # The package must not start its own daemon: ours runs with its own state directory.
    policy = Path("/usr/sbin/policy-rc.d")
    had_policy = policy.exists()
    if not had_policy:
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        for command in (
            ["apt-get", "update", "-qq"],
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "docker.io"],
        ):
            subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    except subprocess.CalledProcessError as error:
        raise StackError(f"installing docker.io failed: {' '.join(error.cmd)}") from None
    finally:
        if not had_policy:
            policy.unlink(missing_ok=True)


@dataclass
class HostState:
    """What dockerd changes on the host, as it was before it started."""

    rules: dict[str, list[str]] = field(default_factory=dict)
    links: set[str] = field(default_factory=set)
    ip_forward: str = "0"

    @classmethod
    def read(cls) -> HostState:
        return cls(
            rules={table: _iptables_rules(table) for table in TABLES},
            links=_links(),
            ip_forward=Path("/proc/sys/net/ipv4/ip_forward").read_text().strip(),
        )


@dataclass
class OwnEngine:
    """dockerd started by us: its data, exec root, pid file and socket under `root`."""

    root: Path
    before: HostState | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def start(self) -> None:
        if shutil.which("dockerd") is None:
            install_docker()
        self.root.mkdir(parents=True, exist_ok=True)
        self.before = HostState.read()
        log = (self.root / "dockerd.log").open("ab")
        self.process = subprocess.Popen(
            [
                "dockerd",
                "--data-root",
                str(self.root / "data"),
                "--exec-root",
                str(self.root / "exec"),
                "--pidfile",
                str(self.root / "dockerd.pid"),
                "--host",
                self.host,
                "--storage-driver=overlay2",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        env = os.environ | {"DOCKER_HOST": self.host}
        deadline = time.monotonic() + 60
        while not answers(env):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise StackError(f"dockerd did not start; see {self.root / 'dockerd.log'}")
            time.sleep(0.2)

    def stop(self) -> None:
        """Stops dockerd, then removes the chains, rules and links it added and restores IP
        forwarding."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.before is None:
            return
        for table in TABLES:
            before = set(self.before.rules[table])
            added = [rule for rule in _iptables_rules(table) if rule not in before]
            for rule in reversed([r for r in added if r.startswith("-A ")]):
                _iptables(table, ["-D", *shlex.split(rule)[1:]])
            for rule in added:
                if rule.startswith("-N "):
                    _iptables(table, ["-F", rule.split()[1]])
            for rule in added:
                if rule.startswith("-N "):
                    _iptables(table, ["-X", rule.split()[1]])
            # dockerd sets FORWARD's policy to DROP.
            for rule in self.before.rules[table]:
                if rule.startswith("-P "):
                    _iptables(table, shlex.split(rule))
        for link in _links() - self.before.links:
            subprocess.run(["ip", "link", "delete", link], check=False, capture_output=True)
        Path("/proc/sys/net/ipv4/ip_forward").write_text(self.before.ip_forward)


def _iptables(table: str, arguments: list[str]) -> None:
    subprocess.run(["iptables", "-t", table, *arguments], check=False, capture_output=True)


def _iptables_rules(table: str) -> list[str]:
    if shutil.which("iptables") is None:
        return []
    result = subprocess.run(
        ["iptables", "-t", table, "-S"], capture_output=True, text=True, check=False
    )
    return result.stdout.splitlines()


def _links() -> set[str]:
    result = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True)
    return {line.split(":")[1].strip().split("@")[0] for line in result.stdout.splitlines()}
