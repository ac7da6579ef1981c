"""What `docker inspect` and the host show of the deployed stack: every service healthy and
confined as compose.yaml promises, only the webhook published beyond loopback, the override
changing nothing but the stand-in and Grafana, and the production image holding only what
production runs."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from infra.cgroups import parse_memory
from tests.deploy.conftest import Deployed

REPO = Path(__file__).resolve().parents[2]
ONE_SHOTS = {"migrate"}
STAND_IN = "telegram-api"


def _services(deployed: Deployed) -> dict[str, Any]:
    return dict(deployed.config()["services"])


def test_every_service_is_healthy_and_confined_as_compose_promises(deployed: Deployed) -> None:
    services = _services(deployed)
    containers = {c["Service"]: c for c in deployed.containers()}
    # Every service of the stack runs, Grafana (left out) and the TLS profile's proxy aside.
    assert set(containers) == set(services), sorted(set(services) ^ set(containers))
    # (offsite_ca is empty without a self-hosted store: an empty file holds no secret.)
    secret_values = [
        value
        for path in deployed.secrets_dir.iterdir()
        if path.is_file() and (value := deployed.secret(path.name))
    ]
    for name, service in services.items():
        container = containers[name]
        details = deployed.inspect(container["ID"])
        state, host, config = details["State"], details["HostConfig"], details["Config"]
        if name in ONE_SHOTS:
            assert state["Status"] == "exited" and state["ExitCode"] == 0, (name, state)
        else:
            assert state["Health"]["Status"] == "healthy", (name, state["Health"]["Log"][-1:])
        limits = service["deploy"]["resources"]["limits"]
        assert host["Memory"] == parse_memory(limits["memory"]), name
        assert host["PidsLimit"] == limits["pids"], name
        assert host["NanoCpus"] == int(float(limits["cpus"]) * 1e9), name
        assert host["ReadonlyRootfs"] is True, name
        assert host["CapDrop"] == ["ALL"], name
        assert set(host["CapAdd"] or []) <= set(service.get("cap_add", [])), name
        assert "no-new-privileges:true" in host["SecurityOpt"], name
        user = config["User"] or "0"
        assert user.split(":")[0] not in ("", "0", "root"), f"{name} runs as {user!r}"
        environment = "\n".join(config["Env"])
        # The stand-in is Telegram's side: the token is its configuration, not a secret of it.
        for value in secret_values if name != STAND_IN else ():
            assert value not in environment, f"{name} has a secret in its environment"


def test_only_the_webhook_is_published_beyond_loopback(deployed: Deployed) -> None:
    published = {}
    for container in deployed.containers():
        for port in deployed.inspect(container["ID"])["NetworkSettings"]["Ports"].values() or []:
            for binding in port or []:
                published[(container["Service"], int(binding["HostPort"]))] = binding["HostIp"]
    public = {key for key, ip in published.items() if ip not in ("127.0.0.1",)}
    assert public == {("bot", deployed.ports["BOT_PUBLISH_PORT"])}, published
    assert (
        deployed.compose("port", "bot", "8080")
        .strip()
        .endswith(f":{deployed.ports['BOT_PUBLISH_PORT']}")
    )
    # What the host listens on (ss): the same, seen from outside Docker.
    listening = subprocess.run(["ss", "-Hltn"], capture_output=True, text=True).stdout
    for (service, port), ip in published.items():
        local = [
            line.split()[3]
            for line in listening.splitlines()
            if line.split()[3].endswith(f":{port}")
        ]
        assert local, f"{service}'s port {port} is not listening"
        if ip == "127.0.0.1":
            assert all(address.startswith("127.0.0.1:") for address in local), (service, local)


def test_the_override_changes_nothing_but_the_stand_in_and_grafana(deployed: Deployed) -> None:
    command = [c for c in deployed.command]
    override = command.index("-f", command.index("-f") + 1)
    alone = command[:override] + command[override + 2 :]
    # Every profile on, so that Grafana and the TLS proxy are in both.
    everything = [
        "--profile",
        "tls",
        "--profile",
        "grafana-official-image",
        "config",
        "--format",
        "json",
    ]
    overridden = json.loads(
        subprocess.run([*command, *everything], capture_output=True, text=True, check=True).stdout
    )
    original = json.loads(
        subprocess.run([*alone, *everything], capture_output=True, text=True, check=True).stdout
    )
    added = overridden["services"].pop(STAND_IN)
    assert added["image"] == "botstack-telegram-api:test"
    grafana = overridden["services"].pop("grafana")
    assert grafana.pop("profiles") == ["grafana-official-image"]
    assert grafana == original["services"].pop("grafana")
    assert overridden == original


def _in_image(deployed: Deployed, image: str, *command: str) -> str:
    return deployed.docker("run", "--rm", "--entrypoint", command[0], image, *command[1:])


def test_the_production_image_holds_only_what_production_runs(deployed: Deployed) -> None:
    image = _services(deployed)["bot"]["image"]
    distributions = set(
        _in_image(
            deployed,
            image,
            "python",
            "-c",
            "import importlib.metadata as m; print('\\n'.join(sorted({d.metadata['Name'].lower() "
            "for d in m.distributions()})))",
        ).split()
    )
    locked = subprocess.run(
        [
            *os.environ.get("UV", "uv").split(),
            "export",
            "--locked",
            "--no-dev",
            "--no-hashes",
            "--no-header",
            "--no-annotate",
            "--no-emit-project",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    ).stdout
    # Only what installs on Linux: the lock also names platform-only packages (colorama for
    # click on Windows), which a Linux image rightly lacks.
    requirements = [Requirement(line) for line in locked.splitlines() if "==" in line]
    wanted = {
        canonicalize_name(r.name)
        for r in requirements
        if r.marker is None or r.marker.evaluate({"sys_platform": "linux"})
    }
    installed = {canonicalize_name(name) for name in distributions}
    # Debian's python3 brings no distributions of its own into the venv's view but pip's
    # absence is the point: nothing that installs or tests.
    assert installed - wanted <= set(), sorted(installed - wanted)
    assert wanted <= installed, sorted(wanted - installed)
    packages = set(_in_image(deployed, image, "dpkg-query", "-W", "-f", "${Package}\\n").split())
    for tool in ("python3-pip", "gcc", "make", "curl", "wget", "git"):
        assert tool not in packages, f"{tool} is in the production image"
    tree = _in_image(deployed, image, "find", "/app", "-maxdepth", "2", "-type", "d").split()
    assert "/app/services/telegram_api" not in tree
    assert "/app/tests" not in tree
    assert "/app/services/bot" in tree
