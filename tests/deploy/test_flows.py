"""The deployed stack exercised as its users meet it: Telegram's updates through the published
webhook, the admin API, the backup service, the monitoring, and the restart and volume
promises. Runs in file order: the faults (PostgreSQL stopped, the bot killed, the stack taken
down) come last."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from functools import partial
from typing import Any

import httpx
import pytest

from infra.compose_secrets import OBJECT_STORE_BUCKET
from tests.deploy.conftest import Deployed, eventually

WEBHOOK_PATH = "/telegram/webhook"
# The alerts a PostgreSQL outage under traffic fires (tests/observability/test_live.py, the
# local stack's twin of this check).
OUTAGE_ALERTS = ("PostgresDown", "AdminApiErrorRate", "DatabaseErrorRate", "BotUpdateErrorRate")


@pytest.fixture(scope="module")
def token(deployed: Deployed) -> str:
    return deployed.secret("bot_token")


@pytest.fixture(scope="module")
def telegram(deployed: Deployed, token: str) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=deployed.url("TELEGRAM_API_PUBLISH_PORT"), params={"token": token}, timeout=30
    ) as client:
        yield client


@pytest.fixture(scope="module")
def admin_key(deployed: Deployed) -> str:
    out = deployed.compose(
        "exec",
        "-T",
        "admin-api",
        "python",
        "-m",
        "services.admin_api.keys",
        "create",
        "--role",
        "admin",
        "--name",
        "deploy-test",
    )
    return out.strip().splitlines()[-1]


def _result(response: httpx.Response) -> Any:
    response.raise_for_status()
    return response.json()["result"]


def _replies(telegram: httpx.Client, chat_id: int) -> int:
    calls = _result(
        telegram.get("/__control/calls", params={"chat_id": chat_id, "method": "sendMessage"})
    )
    return len(calls)


def _update(update_id: int, user_id: int, text: str) -> dict[str, Any]:
    person = {"id": user_id, "is_bot": False, "first_name": "Deploy"}
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id % 100000,
            "date": int(time.time()),
            "chat": {"id": user_id, "type": "private", "first_name": "Deploy"},
            "from": person,
            "text": text,
        },
    }


def test_a_webhook_update_is_applied_once_and_answered_at_the_stand_in(
    deployed: Deployed, telegram: httpx.Client
) -> None:
    user = 5_100_000 + int(time.time()) % 100_000
    # The user exists in the stand-in's world (a private chat), as Telegram's users do.
    _result(telegram.post("/__control/messages", json={"user_id": user, "text": "/start"}))
    eventually(lambda: _replies(telegram, user) > 0, 60, "the bot answering /start")
    before = _replies(telegram, user)
    update_id = 800_000_000 + user
    webhook = deployed.url("BOT_PUBLISH_PORT") + WEBHOOK_PATH
    secret = {"X-Telegram-Bot-Api-Secret-Token": deployed.secret("bot_webhook_secret")}
    with httpx.Client(timeout=30) as client:
        wrong = client.post(
            webhook,
            json=_update(update_id, user, "/help"),
            headers={"X-Telegram-Bot-Api-Secret-Token": "wrong-" + "x" * 40},
        )
        assert wrong.status_code == 401
        assert (
            client.post(webhook, json=_update(update_id, user, "/help"), headers=secret).status_code
            == 200
        )
        eventually(lambda: _replies(telegram, user) > before, 60, "the answer to the update")
        answered = _replies(telegram, user)
        # Redelivered, as Telegram does when it saw no answer: applied once still.
        assert (
            client.post(webhook, json=_update(update_id, user, "/help"), headers=secret).status_code
            == 200
        )
    applied = f"SELECT count(*) FROM processed_updates WHERE update_id = {update_id}"
    assert deployed.psql(applied) == "1"
    # The webhook answers 200 once the update is handled: nothing of the redelivery pends.
    assert _replies(telegram, user) == answered


def test_the_admin_api_answers_with_a_key_made_inside_the_stack(
    deployed: Deployed, admin_key: str
) -> None:
    base = deployed.url("ADMIN_API_PUBLISH_PORT")
    with httpx.Client(base_url=base, timeout=30) as client:
        assert client.get("/users").status_code == 401
        answer = client.get("/users", headers={"Authorization": f"Bearer {admin_key}"})
        assert answer.status_code == 200, answer.text


def test_the_backup_service_backs_up_verifies_and_drills_in_its_container(
    deployed: Deployed,
) -> None:
    # Through the operator's CLI by its name, as the operator's documentation says.
    for command in ("backup", "drill"):
        out = deployed.compose("exec", "-T", "backup", "botstack", command, timeout=600)
        assert out, command
    listed = json.loads(deployed.compose("exec", "-T", "backup", "botstack", "backups", "--json"))
    assert len(listed) >= 1, listed
    succeeded = deployed.psql(
        "SELECT string_agg(DISTINCT kind::text, ',' ORDER BY kind::text) FROM backup_runs "
        "WHERE status = 'succeeded'"
    )
    assert {"base", "drill"} <= set(succeeded.split(",")), succeeded


# What the backup service reads from the s3 profile's store: every object under the
# repository's prefix, through the filer (on the offsite network only; no login), with
# whether it is an OpenSSL aes-256-cbc envelope and whether MARKER (argv) is in it.
READ_BUCKET = """
import json, sys, urllib.request
base, marker = "http://object-store:8888/buckets/" + sys.argv[1], sys.argv[2].encode()
found, pending = {}, ["/botstack"]
while pending:
    directory = pending.pop()
    request = urllib.request.Request(
        base + directory + "/?limit=10000", headers={"Accept": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        entries = json.load(reply).get("Entries") or []
    for entry in entries:
        path = entry["FullPath"].split(sys.argv[1], 1)[1]
        if entry["Mode"] & 0x80000000:
            pending.append(path)
            continue
        with urllib.request.urlopen(base + path, timeout=10) as reply:
            data = reply.read()
        found[path] = [data.startswith(b"Salted__"), marker in data]
print(json.dumps(found))
"""


def _offsite_health(deployed: Deployed) -> dict[str, Any]:
    out = deployed.compose(
        "exec",
        "-T",
        "backup",
        "python",
        "-c",
        "import urllib.request; "
        "print(urllib.request.urlopen('http://127.0.0.1:8000/health/ready').read().decode())",
    )
    return dict(json.loads(out)["offsite"])


def _write_and_ship(deployed: Deployed, marker: str) -> str:
    """A known row written and its WAL segment closed, then waited on until the backup
    service has shipped it offsite (a tick or two); the segment's name."""
    deployed.psql(f"INSERT INTO feature_flags (key, description) VALUES ('{marker}', '')")
    segment = deployed.psql("SELECT pg_walfile_name(pg_current_wal_lsn())")
    deployed.psql("SELECT pg_switch_wal()")

    def shipped() -> bool:
        through = _offsite_health(deployed)["wal_shipped_through"]
        return through is not None and through >= segment

    eventually(shipped, 180, f"WAL segment {segment} offsite")
    return segment


def test_the_offsite_copy_lands_in_the_object_store_encrypted(deployed: Deployed) -> None:
    # The backup service takes its first offsite full backup on its own (none yet), verifies
    # it, and ships the WAL every tick; /health/ready says so.
    eventually(
        lambda: _offsite_health(deployed)["status"] == "OK",
        420,
        "the backup service reporting a verified offsite backup",
    )
    # A known row, its WAL segment closed: shipped offsite within a tick or two.
    marker = f"offsite-marker-{secrets.token_hex(8)}"
    segment = _write_and_ship(deployed, marker)
    health = _offsite_health(deployed)
    assert health["status"] == "OK", health
    objects: dict[str, list[bool]] = json.loads(
        deployed.compose(
            "exec", "-T", "backup", "python", "-c", READ_BUCKET, OBJECT_STORE_BUCKET, marker
        )
    )
    wal = [path for path in objects if f"/{segment}-" in path]
    assert wal, sorted(objects)[:20]
    label = health["newest_verified_backup"]
    backups = [path for path in objects if f"/backup/botstack/{label}/" in path]
    assert backups, sorted(objects)[:20]
    # Every object is ciphertext (the info files, the backup's files, the WAL), and the row
    # written above is in none of them.
    assert all(salted for salted, _ in objects.values()), [
        path for path, (salted, _) in objects.items() if not salted
    ]
    assert not any(found for _, found in objects.values())
    deployed.psql(f"DELETE FROM feature_flags WHERE key = '{marker}'")


def test_the_vps_is_gone_restore_brings_back_the_newest_row_from_offsite_alone(
    deployed: Deployed,
) -> None:
    # docs/offsite-backups.md's compose steps: a one-off backup container restores from the
    # offsite repository alone into an empty volume (a new server's), replays and promotes.
    marker = f"vps-gone-{secrets.token_hex(8)}"
    _write_and_ship(deployed, marker)
    volume = f"botstack-deploytest-restore-{secrets.token_hex(4)}"
    count = f"SELECT 'restored rows: ' || count(*) FROM feature_flags WHERE key = '{marker}'"
    # offsite-restore stops the promoted server; started again here to read the row.
    check = (
        "offsite-restore /restore && "
        "pg_ctl -D /restore -w -l /tmp/check.log "
        "-o \"-c listen_addresses='' -c unix_socket_directories=/tmp\" start && "
        f'psql -h /tmp -U postgres -d botstack -tAc "{count}" && '
        "pg_ctl -D /restore -w -m fast stop"
    )
    started = time.monotonic()
    try:
        out = deployed.compose(
            "run",
            "--rm",
            "--no-deps",
            "--volume",
            f"{volume}:/restore",
            "--entrypoint",
            "bash",
            "backup",
            "-c",
            check,
            timeout=600,
        )
    finally:
        subprocess.run(["docker", "volume", "rm", "-f", volume], capture_output=True)
    print(f"offsite restore into an empty volume: {time.monotonic() - started:.1f} s")
    assert "restored rows: 1" in out.splitlines(), out[-2000:]
    deployed.psql(f"DELETE FROM feature_flags WHERE key = '{marker}'")


class Prometheus:
    def __init__(self, deployed: Deployed) -> None:
        self.client = httpx.Client(base_url=deployed.url("PROMETHEUS_PUBLISH_PORT"), timeout=30)

    def query(self, expr: str) -> list[dict[str, Any]]:
        return list(_data(self.client.get("/api/v1/query", params={"query": expr}))["result"])

    def alerts(self) -> dict[str, str]:
        found = _data(self.client.get("/api/v1/alerts"))["alerts"]
        return {alert["labels"]["alertname"]: alert["state"] for alert in found}


def _in_state(prometheus: Prometheus, name: str, state: str | None) -> bool:
    return prometheus.alerts().get(name) == state


def _data(response: httpx.Response) -> Any:
    response.raise_for_status()
    return response.json()["data"]


def test_prometheus_scrapes_every_target_and_nothing_fires_at_idle(deployed: Deployed) -> None:
    prometheus = Prometheus(deployed)

    def all_up() -> bool:
        targets = _data(prometheus.client.get("/api/v1/targets"))["activeTargets"]
        return bool(targets) and all(t["health"] == "up" for t in targets)

    eventually(all_up, 90, "every target up")
    up_at = time.time()

    def evaluated_since() -> bool:
        # Alert states change only when the rules are evaluated: until an evaluation has seen
        # every target up, one scraped before its service listened (Prometheus does not wait
        # for the services) still holds TargetDown pending, and one never evaluated is silent.
        last = prometheus.query("min(prometheus_rule_group_last_evaluation_timestamp_seconds)")
        interval = prometheus.query("max(prometheus_rule_group_interval_seconds)")
        return bool(last and interval) and float(last[0]["value"][1]) - up_at >= float(
            interval[0]["value"][1]
        )

    eventually(evaluated_since, 90, "a rule evaluation with every target up")
    jobs = {
        t["labels"]["job"] for t in _data(prometheus.client.get("/api/v1/targets"))["activeTargets"]
    }
    assert jobs == {"prometheus", "bot", "admin-api", "backup", "postgres", "pgbouncer", "node"}
    groups = _data(prometheus.client.get("/api/v1/rules"))["groups"]
    assert sum(len(group["rules"]) for group in groups) >= 16
    # With the offsite copy configured (and its first backup verified above), nothing fires:
    # not even OffsiteBackupNotConfigured, the one warning of a stack without it.
    assert prometheus.query("min(backup_offsite_configured)")[0]["value"][1] == "1"
    assert prometheus.alerts() == {}


def test_stopping_postgres_fires_the_outage_alerts_and_starting_it_resolves_them(
    deployed: Deployed, telegram: httpx.Client, admin_key: str
) -> None:
    prometheus = Prometheus(deployed)
    stop = threading.Event()

    def traffic() -> None:
        # Requests and updates before, during and after: the error ratios are of real ones.
        admin = httpx.Client(
            base_url=deployed.url("ADMIN_API_PUBLISH_PORT"),
            timeout=10,
            headers={"Authorization": f"Bearer {admin_key}"},
        )
        message = {"user_id": 5_300_000, "text": "hi"}
        while not stop.is_set():
            try:
                admin.get("/users")
                telegram.post("/__control/messages", json=message)
            except httpx.HTTPError:
                pass
            stop.wait(0.5)

    loop = threading.Thread(target=traffic, daemon=True)
    loop.start()
    try:
        deployed.compose("stop", "postgres")
        try:
            for name in OUTAGE_ALERTS:
                eventually(partial(_in_state, prometheus, name, "firing"), 240, f"{name} firing")
        finally:
            deployed.compose("start", "postgres")
        for name in OUTAGE_ALERTS:
            eventually(partial(_in_state, prometheus, name, None), 300, f"{name} resolved")
    finally:
        stop.set()
        loop.join()


def _answered(telegram: httpx.Client, user: int) -> bool:
    return _replies(telegram, user) >= 1


def _user_count(deployed: Deployed, users: list[int]) -> int:
    listed = ",".join(map(str, users))
    return int(deployed.psql(f"SELECT count(*) FROM users WHERE telegram_id IN ({listed})"))


def test_a_killed_bot_is_restarted_and_loses_no_update(
    deployed: Deployed, telegram: httpx.Client
) -> None:
    bot = next(c for c in deployed.containers() if c["Service"] == "bot")
    details = deployed.inspect(bot["ID"])
    restarts = details["RestartCount"]
    first = 5_400_000 + int(time.time()) % 100_000 * 20
    users = list(range(first, first + 20))
    # SIGKILL of its process from the host, as the OOM killer or a crash ends it: `docker
    # kill` would count as stopping it by hand, which restart policies leave stopped.
    os.kill(details["State"]["Pid"], signal.SIGKILL)
    # Updates while the bot is down: the stand-in redelivers each until the bot takes it.
    for user in users:
        _result(telegram.post("/__control/messages", json={"user_id": user, "text": "/start"}))

    def healthy_again() -> bool:
        state = deployed.inspect(bot["ID"])
        return bool(
            state["RestartCount"] > restarts and state["State"]["Health"]["Status"] == "healthy"
        )

    eventually(healthy_again, 120, "the bot restarted by its restart policy and healthy")
    eventually(
        lambda: _user_count(deployed, users) == len(users),
        120,
        "every update sent while the bot was down applied",
    )
    for user in users:
        eventually(partial(_answered, telegram, user), 60, f"user {user} answered")


def test_down_and_up_keeps_every_row(deployed: Deployed) -> None:
    tables = ("users", "processed_updates", "api_keys", "backup_runs")
    counted = {table: deployed.psql(f"SELECT count(*) FROM {table}") for table in tables}
    deployed.compose("down", "--timeout", "60")
    deployed.compose("up", "--detach", "--wait", "--wait-timeout", "300", "--no-build", timeout=400)
    assert {table: deployed.psql(f"SELECT count(*) FROM {table}") for table in tables} == counted
