"""The local stack's own services, as `make up` runs them: never as root, each with only the
settings it reads, their logs readable by their owner alone, health and metrics of the bot off
the webhook's port, and a port held by a stranger refused by name."""

from __future__ import annotations

import json
import os
import pwd
import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from infra.app_services import APP_SERVICES, AppServiceProcess
from infra.service_runtime import APP_USER, Runtime
from infra.stack import LocalStack
from infra.stack_state import Layout, Ports
from infra.system import StackError
from services.core.os_user import ServiceUser

SECRETS = ("MIGRATE_PASSWORD", "BACKUP_PASSWORD", "PGBOUNCER_STATS_PASSWORD", "DB_PASSWORD")
# What each service may see of the secrets above (everything else is withheld).
ALLOWED = {
    "telegram-api": set(),
    "bot": {"DB_PASSWORD"},
    "admin-api": {"DB_PASSWORD"},
    # MIGRATE_PASSWORD: its scheduled VACUUM, ANALYZE and REINDEX need the tables' owner.
    "backup": {"DB_PASSWORD", "BACKUP_PASSWORD", "MIGRATE_PASSWORD"},
}


def _processes(stack: LocalStack) -> dict[str, AppServiceProcess]:
    ports = Ports(stack.port_base)
    return {s.name: AppServiceProcess(stack.paths, ports, s) for s in APP_SERVICES}


def _status(pid: int, field: str) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return line.split()[1]
    raise LookupError(field)


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def test_services_run_unprivileged_with_only_their_own_settings(stack: LocalStack) -> None:
    postgres_user = ServiceUser.detect()
    for name, process in _processes(stack).items():
        pid = process.pid()
        assert pid is not None, name
        uid = int(_status(pid, "Uid"))
        assert uid != 0, f"{name} runs as root"
        if os.geteuid() == 0:  # else they run as the user who started the stack
            user = postgres_user.name if name == "backup" else APP_USER
            assert uid == pwd.getpwnam(user).pw_uid, f"{name} runs as uid {uid}, not {user}"
        environ = _environ(pid)
        seen = {secret for secret in SECRETS if secret in environ}
        assert seen == ALLOWED[name], name
        if name != "bot":
            assert not any(key.startswith("BOT_") for key in environ), name


def test_logs_are_readable_by_their_owner_only(stack: LocalStack) -> None:
    logs = sorted(stack.paths.logs.glob("*.log"))
    assert {p.name for p in logs} >= {"bot.log", "admin-api.log", "postgresql.log"}
    for log in logs:
        assert log.stat().st_mode & 0o077 == 0, f"{log.name} is readable by others"


def test_the_bots_health_and_metrics_are_not_on_its_webhook_port(
    endpoints: dict[str, str],
) -> None:
    webhook_base = endpoints["bot_webhook_url"].removesuffix("/telegram/webhook")
    with urllib.request.urlopen(endpoints["bot_metrics_url"] + "/metrics", timeout=5) as reply:
        assert b"db_pool_utilization" in reply.read()
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(webhook_base + "/metrics", timeout=5)
    assert refused.value.code == 404


def test_backup_readiness_is_what_the_postgres_user_can_do(
    stack: LocalStack, endpoints: dict[str, str]
) -> None:
    archive = stack.paths.wal_archive
    mode = archive.stat().st_mode & 0o777
    os.chmod(archive, 0o500)
    try:
        with pytest.raises(urllib.error.HTTPError) as unready:
            urllib.request.urlopen(endpoints["backup_url"] + "/health/ready", timeout=10)
        assert unready.value.code == 503
        problems = json.loads(unready.value.read())["problems"]
        assert any("is not writable" in problem for problem in problems), problems
    finally:
        os.chmod(archive, mode)
    with urllib.request.urlopen(endpoints["backup_url"] + "/health/ready", timeout=10) as ready:
        assert ready.status == 200


def test_a_port_held_by_another_program_is_refused_naming_it(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    layout.run.mkdir()
    layout.logs.mkdir()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        service = APP_SERVICES[0]
        process = AppServiceProcess(layout, Ports(port - 2000 - service.port_offset), service)
        runtime = Runtime(Path("/nonexistent/python"), None, None)
        with pytest.raises(StackError) as refused:
            process.start({}, runtime)
    message = str(refused.value)
    assert f"127.0.0.1:{port} is held by another program (pid {os.getpid()}" in message
