"""Runs chaos scenarios on a local stack of their own under Telegram-like load.

Per scenario: Locust (loadtests/locustfile.py, new chats each time) sends steady traffic; once
the webhook is answering, `before` seconds pass, the fault is injected, held for its time and
ended; Locust goes on for `after` seconds (redeliveries, the supervisor's restarts); then the
outbox is drained, every acknowledged update is checked against the database
(loadtests/accounting.py), and the alerts that fired during the scenario must be resolved.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import threading
import time
import urllib.error
import urllib.request
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.processes import Supervised
from infra.stack import LocalStack
from infra.stack_state import HOST, Ports, StackState
from infra.supervisor import Component
from infra.system import probe
from loadtests.accounting import account, read_ledger
from loadtests.chaos import figures, filesystems
from loadtests.chaos.oom import BotMemoryGroup
from loadtests.chaos.proxy import Proxy
from loadtests.chaos.scenarios import Scenario
from loadtests.profiles import Phase, Profile
from loadtests.run import REPO, control_get, env_file, locust_command, outbox_pending, seed
from services.core.os_user import ServiceUser

PROGRESS_SECONDS = 5.0
ALERT_POLL_SECONDS = 2.0
# Error-rate rules look back 2 minutes: they resolve that long after the errors stop.
RESOLVE_TIMEOUT_SECONDS = 240.0
DRAIN_TIMEOUT_SECONDS = 120.0
GAP_ALERTS = {"DatabaseErrorRate", "BotUpdateErrorRate", "AdminApiErrorRate"}
LOCUST_START_TIMEOUT_SECONDS = 120.0


@dataclass
class Settings:
    state_dir: Path
    port_base: int
    proxy_port: int  # the bot -> PgBouncer proxy; +1 the webhook balancer, +2/+3 replica 2
    rate: float  # updates/s
    before: float  # seconds of traffic before the fault
    after: float  # seconds of traffic after it ends


@dataclass
class Context:
    """What a scenario's inject and heal act on."""

    stack: LocalStack
    endpoints: dict[str, str]
    environment: dict[str, str]
    proxy: Proxy
    admin_key: str
    components: dict[str, Component]
    port_base: int
    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    fixture: Any = None  # what the scenario's setup yielded (a filesystem, a cgroup)
    fault_end: float = 0.0  # when the fault was ended (Unix time)

    def pid(self, name: str) -> int | None:
        return self.components[name].pid()

    def alerts_firing(self) -> set[str]:
        return firing(self.endpoints["prometheus_url"])

    def superuser_sql(self, sql: str) -> subprocess.CompletedProcess[str]:
        """One statement as the cluster's superuser, over its socket (peer authentication):
        for what the services' roles may not do (WAL switches, the archiver's status)."""
        state = StackState.load(self.stack.paths.state)
        return probe(
            [
                state.psql,
                "--no-psqlrc",
                "-At",
                "-h",
                self.stack.paths.run,
                "-p",
                str(state.ports.postgres),
                "-d",
                "postgres",
                "-c",
                sql,
            ],
            user=ServiceUser.detect(),
        )

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"  note: {text}", flush=True)

    def fail(self, text: str) -> None:
        self.failures.append(text)
        print(f"  FAILED: {text}", flush=True)

    def admin_status(self, path: str) -> int:
        request = urllib.request.Request(
            self.endpoints["admin_api_url"] + path,
            headers={"Authorization": f"Bearer {self.admin_key}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                return int(reply.status)
        except urllib.error.HTTPError as error:
            return int(error.code)
        except (urllib.error.URLError, OSError):
            return 0


class Watch(threading.Thread):
    """Through a scenario: the alerts firing (by name, first seen) and the outbox's due
    messages, every couple of seconds."""

    def __init__(self, prometheus: str, dsn: str, baseline: set[str]) -> None:
        super().__init__(daemon=True)
        self.prometheus = prometheus
        self.dsn = dsn
        self.baseline = baseline
        self.fired: dict[str, float] = {}
        self.outbox: list[tuple[float, int]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(ALERT_POLL_SECONDS):
            for name in firing(self.prometheus) - self.baseline:
                self.fired.setdefault(name, time.time())
            try:
                self.outbox.append((time.time(), asyncio.run(outbox_pending(self.dsn))))
            except (TimeoutError, OSError, Exception):  # the database may be down
                continue


def firing(prometheus: str, states: tuple[str, ...] = ("firing",)) -> set[str]:
    try:
        with urllib.request.urlopen(f"{prometheus}/api/v1/alerts", timeout=5) as reply:
            alerts = json.load(reply)["data"]["alerts"]
    except (urllib.error.URLError, OSError, ValueError, KeyError):
        return set()
    return {a["labels"]["alertname"] for a in alerts if a.get("state") in states}


class Runner:
    def __init__(self, settings: Settings, run_dir: Path) -> None:
        self.settings = settings
        self.run_dir = run_dir
        self.secret = _secret(settings.state_dir)
        ports = Ports(settings.port_base)
        self.proxy = Proxy(settings.proxy_port, [ports.pgbouncer])
        self.stack = LocalStack(
            settings.state_dir,
            settings.port_base,
            service_env={
                "BOT_WEBHOOK_SECRET": self.secret,
                "BOT_SET_WEBHOOK": "false",  # Locust plays Telegram's side of the webhook
                "TELEGRAM_API_SEND_LIMITS": "true",
                "BOT_STAFF_CHAT_ID": "",  # as the load runs: no staff forum group
                # The services reach PgBouncer through the harness's proxy (net-* faults).
                "DB_PORT": str(settings.proxy_port),
            },
            # Prometheus scrapes and evaluates the rules every second: a rule's `for:` then
            # counts from the fault's first second.
            scrape_interval="1s",
        )

    def start(self) -> None:
        self.proxy.start()
        print("starting the chaos stack (supervised; services reach PgBouncer via the proxy) ...")
        self.endpoints = self.stack.up()
        # What a run killed outright (SIGKILL) left behind: mounts, pg_wal, the bot's group.
        filesystems.cleanup(self.stack)
        BotMemoryGroup(self.settings.port_base).leave()
        self._wait_gap_forgotten()
        self.environment = env_file(self.stack.paths.env)
        self.admin_key = seed(self.endpoints, self.environment, f"chaos-{self.run_dir.name}")
        self.context = Context(
            self.stack,
            self.endpoints,
            self.environment,
            self.proxy,
            self.admin_key,
            {c.name: c for c in self.stack.supervised()},
            self.settings.port_base,
        )

    def _wait_gap_forgotten(self) -> None:
        """The services reach PgBouncer through this harness's proxy, so between two runs
        of a stack left up their database was unreachable (the outbox worker counts a
        failure a second): the error-rate rules, looking back 2 minutes, still hold that gap.
        Waited out, pending ones too, so that the first scenario is not credited with them."""
        deadline = time.monotonic() + RESOLVE_TIMEOUT_SECONDS
        prometheus = self.endpoints["prometheus_url"]
        while held := firing(prometheus, ("pending", "firing")) & GAP_ALERTS:
            if time.monotonic() > deadline:
                return  # left to the baseline: already firing, not counted
            print(f"  waiting for {', '.join(sorted(held))} from before this run ...", flush=True)
            time.sleep(5)

    def stop(self, *, stack_too: bool) -> None:
        if stack_too:
            self.stack.down()
        self.proxy.stop()

    def run_safely(self, scenario: Scenario) -> figures.Row:
        """run(), a scenario that broke down being a failed row, and the next one runs."""
        try:
            return self.run(scenario)
        except Exception as error:
            print(f"  FAILED: {scenario.name} broke down: {error}", flush=True)
            return figures.broken(scenario.name, f"{type(error).__name__}: {error}")

    def run(self, scenario: Scenario) -> figures.Row:
        print(f"\n== {scenario.name}: {scenario.summary}", flush=True)
        directory = self.run_dir / scenario.name
        directory.mkdir()
        self.context.notes, self.context.failures = [], []
        prometheus = self.endpoints["prometheus_url"]
        # Pending ones too: a standing alert on its way to firing (OffsiteBackupNotConfigured
        # on a fresh stack) is not this fault's, though it fires while the scenario runs.
        baseline = firing(prometheus, ("pending", "firing"))
        if baseline:
            self.context.note(f"already raised before the fault (not counted): {sorted(baseline)}")
        # The setup (a small filesystem, a memory group) is undone on every way out.
        setup = scenario.setup(self.context) if scenario.setup else nullcontext()
        with setup as self.context.fixture:
            watch, locust, fault_start, fault_end = self._traffic_and_checks(
                scenario, directory, prometheus, baseline
            )
        ledger = read_ledger(directory / "ledger.jsonl")
        return self._judge(scenario, directory, watch, locust, fault_start, fault_end, ledger)

    def _traffic_and_checks(
        self, scenario: Scenario, directory: Path, prometheus: str, baseline: set[str]
    ) -> tuple[Watch, int, float, float]:
        replica = self._second_replica() if scenario.replicas else None
        balancer = None
        bot_url = self.endpoints["bot_webhook_url"].rsplit("/telegram/webhook", 1)[0]
        if replica is not None:
            ports = Ports(self.settings.port_base)
            balancer = Proxy(
                self.settings.proxy_port + 1, [ports.app(2), self.settings.proxy_port + 2]
            )
            balancer.start()
            bot_url = f"http://{HOST}:{self.settings.proxy_port + 1}"
        watch = Watch(prometheus, self.endpoints["postgres_dsn"], baseline)
        watch.start()
        try:
            locust, fault_start, fault_end = self._traffic(scenario, directory, bot_url)
        finally:
            if balancer is not None:
                balancer.stop()
            if replica is not None:
                self._replica_share(replica)
                replica.stop()
        if scenario.after is not None:
            scenario.after(self.context)
        self._drain()
        return watch, locust, fault_start, fault_end

    def _judge(
        self,
        scenario: Scenario,
        directory: Path,
        watch: Watch,
        locust: int,
        fault_start: float,
        fault_end: float,
        ledger: list[dict[str, Any]],
    ) -> figures.Row:
        texts = control_get(self.endpoints["telegram_api_url"], "texts-delivered")
        counts = asyncio.run(account(ledger, self.endpoints["postgres_dsn"], texts))
        recovery = figures.recovery_seconds(ledger, fault_start, fault_end)
        backlog = figures.backlog_cleared_seconds(ledger, fault_end, watch.outbox)
        unresolved = self._wait_resolved(watch)
        watch.stopping.set()
        if locust != 0 and locust != 1:
            self.context.fail(f"Locust exited with {locust}; see {directory / 'locust.log'}")
        if not scenario.expected_alerts:
            self.context.note(f"no alert expected: {scenario.why_no_alert}")
        result = figures.row(
            scenario.name,
            counts,
            recovery,
            backlog,
            list(watch.fired),
            scenario.expected_alerts,
            unresolved,
            self.context.failures,
        )
        result.details["summary"] = scenario.summary
        result.details["notes"] = list(self.context.notes)
        (directory / "figures.json").write_text(
            json.dumps({**result.to_json(), **result.details}, indent=2) + "\n"
        )
        return result

    def _traffic(
        self, scenario: Scenario, directory: Path, bot_url: str
    ) -> tuple[int, float, float]:
        """Locust through the scenario; the fault injected `before` seconds after the webhook
        first answered. Returns Locust's exit status and the fault's start and end."""
        s = self.settings
        users = max(20, int(s.rate * 4))  # each chat under one update every 4 s (throttling)
        seconds = s.before + scenario.fault_seconds + s.after + 15  # + Locust's own start
        profile = Profile(
            name=f"chaos-{scenario.name}",
            phases=(Phase("steady", seconds, s.rate, users),),
            staff_users=2 if scenario.name == "admin-outage" else 1,
            drain_seconds=DRAIN_TIMEOUT_SECONDS,
        )
        plan = {
            "profile": json.loads(profile.to_json()),
            "secret": self.secret,
            "webhook_path": "/telegram/webhook",
            "telegram_url": self.endpoints["telegram_api_url"],
            "admin_url": self.endpoints["admin_api_url"],
            "admin_key": self.admin_key,
            "ledger": str(directory / "ledger.jsonl"),
            "capacity_file": str(directory / "capacity.json"),
            "user_base": 7_000_000_000 + (int(time.time()) % 10**6) * 1000,
        }
        with (directory / "locust.log").open("w") as output:
            locust = subprocess.Popen(
                locust_command(directory, bot_url),
                env={**os.environ, "LOADTEST_PLAN": json.dumps(plan)},
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )
        try:
            self._wait_answering(directory, locust)
            time.sleep(s.before)
            fault_start = time.time()
            print(f"  fault: {scenario.summary}", flush=True)
            scenario.inject(self.context)
            remaining = fault_start + scenario.fault_seconds - time.time()
            if remaining > 0:
                self._progress(directory, remaining)
            scenario.heal(self.context)
            fault_end = self.context.fault_end = time.time()
            print(f"  fault ended after {fault_end - fault_start:.1f} s", flush=True)
            while locust.poll() is None:
                self._progress(directory, PROGRESS_SECONDS)
        except BaseException:
            locust.terminate()
            raise
        return locust.returncode, fault_start, fault_end

    def _wait_answering(self, directory: Path, locust: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + LOCUST_START_TIMEOUT_SECONDS
        while _webhook_counts(directory)[0] == 0:
            if locust.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Locust sent nothing; see {directory / 'locust.log'}")
            time.sleep(0.5)

    def _progress(self, directory: Path, seconds: float) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            time.sleep(min(PROGRESS_SECONDS, left))
            total, failed = _webhook_counts(directory)
            print(f"  webhook POSTs {total:.0f}, failed {failed:.0f}", flush=True)

    def _drain(self) -> None:
        """Until the outbox has nothing due, nor anything Telegram refused waiting for its
        next attempt (the outbox backs off up to 15 s): counted before it went out, a reply
        sent late would be a reply lost."""
        deadline = time.monotonic() + DRAIN_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            try:
                if asyncio.run(outbox_pending(self.endpoints["postgres_dsn"], retrying=True)) == 0:
                    return
            except Exception:
                pass
            time.sleep(2)

    def _wait_resolved(self, watch: Watch) -> list[str]:
        """The alerts of this scenario still firing after RESOLVE_TIMEOUT_SECONDS. A pending
        one (its `for:` not yet held) is waited on too, until it fires or clears: the fault
        raised it (telegram-slow's calls time out a minute after they were made), and left
        pending it would fire in the next scenario's run."""
        deadline = time.monotonic() + RESOLVE_TIMEOUT_SECONDS
        prometheus = self.endpoints["prometheus_url"]
        while True:
            still = sorted(firing(prometheus, ("firing", "pending")) - watch.baseline)
            for name in firing(prometheus) - watch.baseline:
                watch.fired.setdefault(name, time.time())
            if not still or time.monotonic() > deadline:
                if still:
                    print(f"  still firing: {still}", flush=True)
                return still
            print(f"  waiting for {', '.join(still)} to resolve ...", flush=True)
            time.sleep(5)

    def _replica_share(self, replica: Supervised) -> None:
        """How many updates the second replica handled: the balancer must have spread them."""
        url = replica.health_url.replace("/health/live", "/metrics")
        try:
            with urllib.request.urlopen(url, timeout=10) as reply:
                text = reply.read().decode()
        except (urllib.error.URLError, OSError) as error:
            self.context.fail(f"the second replica's metrics could not be read: {error}")
            return
        handled = sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("bot_updates_total{") and 'outcome="handled"' in line
        )
        self.context.note(f"the second replica handled {handled:.0f} updates")
        if handled == 0:
            self.context.fail("the second replica handled no update: nothing was spread")

    def _second_replica(self) -> Supervised:
        """A second bot process, started as the stack started the first (same settings,
        its own ports), not supervised: the harness stops it after the scenario."""
        first = self.stack.paths.run / "bot.launch.json"
        launch: dict[str, Any] = json.loads(first.read_text())
        webhook, metrics = self.settings.proxy_port + 2, self.settings.proxy_port + 3
        launch["env"] = {
            **launch["env"],
            "BOT_WEBHOOK_PORT": str(webhook),
            "BOT_METRICS_PORT": str(metrics),
        }
        replica = Supervised(
            "bot-2",
            "services.bot",
            (webhook, metrics),
            f"http://{HOST}:{metrics}/health/live",
            self.stack.paths.run / "bot-2.pid",
            self.stack.paths.logs / "bot-2.log",
        )
        print(f"  starting a second bot replica on {webhook} ...", flush=True)
        replica.start_like(launch)
        return replica


def _secret(state_dir: Path) -> str:
    """The webhook's secret token, kept with the chaos stack: a run finding the stack up
    (its bot already started with the secret) must send the same one."""
    path = state_dir / "chaos-webhook-secret"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        state_dir.mkdir(parents=True, exist_ok=True)
        secret = os.urandom(24).hex()
        path.write_text(secret + "\n")
        path.chmod(0o600)
        return secret


def _webhook_counts(directory: Path) -> tuple[float, float]:
    """Webhook POSTs and failures so far, from Locust's CSV history."""
    history = directory / "locust_stats_history.csv"
    try:
        lines = history.read_text().splitlines()
    except OSError:
        return 0.0, 0.0
    header = lines[0].split(",") if lines else []
    for line in reversed(lines[1:]):
        row = dict(zip(header, line.split(","), strict=False))
        if row.get("Name") == "webhook":
            return float(row["Total Request Count"] or 0), float(row["Total Failure Count"] or 0)
    return 0.0, 0.0
