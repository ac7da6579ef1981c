"""make loadtest: Locust drives the whole local stack inside compose.yaml's memory limits.

    python -m loadtests.run [--profile smoke|standard|soak|capacity] [--help for the knobs]

1. The budget: each service's memory cgroup gets the limit compose.yaml gives it, under a
   parent of 2 GiB, and a probe shows the limit kills (a process allocating past a tiny limit
   is OOM-killed) before the report calls the budget enforced. Without writable cgroups the run
   says so and measures without enforcing.
2. The stack (its own state directory, .stack-load/): stopped, then started with every
   process born in its group; the stand-in enforces Telegram's send limits; the bot does not
   register a webhook, since Locust plays Telegram's side of it.
3. Locust (loadtests/locustfile.py) plays the profile's phases: Telegram users post updates to
   the webhook, staff use the admin API. Memory and CPU are sampled every second; a progress
   line every 5 s says the phase, the rate, the errors and the memory.
4. After a drain (redeliveries, the outbox), every acknowledged update is checked against the
   database and every text the stand-in delivered against what the bot logged.
5. loadtests/reports/<timestamp>-<profile>/ gets index.html, summary.json, Locust's report,
   the ledger and the samples; loadtests/reports/latest points at it. The exit status is 1 when
   a threshold failed, and the failing lines are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import dataclasses
import hashlib
import json
import logging
import os
import secrets
import shlex
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from infra.cgroups import BUDGET_BYTES, GROUPS, MemoryCgroups, compose_limits
from infra.processes import Placement, unplaced
from infra.stack import LocalStack
from infra.system import StackError
from loadtests import report
from loadtests.accounting import Accounting, account, read_ledger
from loadtests.profiles import PROFILES, Phase, Profile, Thresholds, phase_at, phase_windows
from loadtests.sampler import CgroupSource, ProcessSource, Sampler

REPO = Path(__file__).resolve().parent.parent
REPORTS = REPO / "loadtests" / "reports"
PROGRESS_SECONDS = 5.0
MIB = 1024**2
# What compose runs and this machine cannot: counted at its compose limit in the total.
NOT_RUN_HERE = ("grafana",)
log = logging.getLogger("loadtests")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.run",
        description="Load-test the local stack inside compose.yaml's memory limits and write "
        "an HTML report and summary.json; exit 1 when a threshold fails.",
    )
    parser.add_argument("--profile", choices=sorted(PROFILES), default="standard")
    parser.add_argument(
        "--state-dir", type=Path, default=REPO / ".stack-load", help="the load stack's state"
    )
    parser.add_argument("--port-base", type=int, default=25630, help="the load stack's ports")
    parser.add_argument("--reports", type=Path, default=REPORTS, help="where reports go")
    parser.add_argument("--rate", type=float, help="plateau (and recovery) updates/s")
    parser.add_argument("--spike-rate", type=float, help="updates/s at the spike")
    parser.add_argument("--plateau-seconds", type=float, help="how long the plateau lasts")
    parser.add_argument("--staff-users", type=int, help="admin API users")
    parser.add_argument(
        "--p99-ms",
        type=float,
        help=f"webhook p99 threshold (default {Thresholds().webhook_p99_ms:.0f})",
    )
    parser.add_argument("--scrape-interval", default="5s", help="Prometheus' scrape interval")
    parser.add_argument(
        "--no-cgroups", action="store_true", help="measure memory without enforcing limits"
    )
    parser.add_argument(
        "--cpus",
        type=int,
        help="confine the stack's services to this many CPUs (a cpuset cgroup), as on a VPS "
        "of that many cores; the Telegram stand-in and Locust run on the others",
    )
    parser.add_argument(
        "--stop", action="store_true", help="stop the load stack afterwards (default: keep it)"
    )
    return parser.parse_args(argv)


def tuned(profile: Profile, args: argparse.Namespace) -> Profile:
    """The profile with the knobs given on the command line."""
    phases = []
    for phase in profile.phases:
        rate = phase.rate
        if args.rate and phase.name in ("ramp", "plateau", "recovery"):
            rate = args.rate
        if args.spike_rate and phase.name == "spike":
            rate = args.spike_rate
        # As many chats as keep each under one update every 4 s (the bot throttles at 30/min).
        users = max(phase.users, int(rate * 4)) if rate != phase.rate else phase.users
        seconds = (
            args.plateau_seconds
            if args.plateau_seconds and phase.name == "plateau"
            else phase.seconds
        )
        phases.append(Phase(phase.name, seconds, rate, users))
    thresholds = profile.thresholds
    if args.p99_ms:
        thresholds = dataclasses.replace(thresholds, webhook_p99_ms=args.p99_ms)
    backup_at, drill_at = profile.backup_at, profile.drill_at
    if args.plateau_seconds and backup_at is not None and drill_at is not None:
        # A shortened soak keeps its backup and drill at the same shares of the plateau.
        plateau = next(p.seconds for p in profile.phases if p.name == "plateau")
        backup_at = backup_at * args.plateau_seconds / plateau
        drill_at = drill_at * args.plateau_seconds / plateau
    return dataclasses.replace(
        profile,
        phases=tuple(phases),
        backup_at=backup_at,
        drill_at=drill_at,
        staff_users=profile.staff_users if args.staff_users is None else args.staff_users,
        thresholds=thresholds,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    profile = tuned(PROFILES[args.profile], args)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = args.reports / f"{stamp}-{profile.name}"
    run_dir.mkdir(parents=True)
    latest = args.reports / "latest"
    latest.unlink(missing_ok=True)
    latest.symlink_to(run_dir.name)
    print(f"load run {run_dir.name}: {len(profile.phases)} phases, {profile.seconds:.0f} s of load")
    try:
        return Run(args, profile, run_dir).execute()
    except StackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


class Run:
    def __init__(self, args: argparse.Namespace, profile: Profile, run_dir: Path) -> None:
        self.args = args
        self.profile = profile
        self.run_dir = run_dir
        all_limits = compose_limits()
        self.limits = {group: all_limits[group] for group in GROUPS}
        self.uncounted = sum(all_limits[name] for name in NOT_RUN_HERE)
        # One set of groups per state directory: two checkouts never share (and empty) them.
        where = hashlib.sha1(str(args.state_dir.resolve()).encode()).hexdigest()[:8]
        self.cgroups = MemoryCgroups(f"botstack-load-{where}", self.limits, cpus=args.cpus)
        self.notes: list[str] = []
        self.enforced = False
        self._last_count = (0.0, 0.0)  # webhook POSTs and when, at the last progress line

    def execute(self) -> int:
        placement = self._budget()
        secret = secrets.token_urlsafe(32)
        stack = LocalStack(
            self.args.state_dir,
            self.args.port_base,
            service_env={
                "BOT_WEBHOOK_SECRET": secret,
                "BOT_SET_WEBHOOK": "false",  # Locust delivers the updates
                "TELEGRAM_API_SEND_LIMITS": "true",
                # No staff forum group. Not for the topic ids any more (the stand-in continues
                # them across restarts: a second run's topics came out 1002 and 1006 after the
                # first's 1 and 5): with it the smoke plateau's webhook p99 was 123 to 275 ms
                # against 44 ms without, on the same machine minutes apart. A ticket's topic
                # is made by a createForumTopic call while its ticket is locked (the handler's
                # own call for a known user, the outbox's topic task for a new one), paced by
                # the group's 20/min: the updates waiting on it set the p99.
                "BOT_STAFF_CHAT_ID": "",
            },
            scrape_interval=self.args.scrape_interval,
            placement=placement,
        )
        print("starting the load stack (every process born in its memory cgroup) ...")
        endpoints = stack.up()
        source = CgroupSource(self.cgroups) if self.enforced else ProcessSource(stack.paths)
        sampler = Sampler(source, self.cgroups if self.enforced else None)
        sampler.start()
        try:
            environment = env_file(stack.paths.env)
            key = self._seed(endpoints, environment)
            plan = {
                "profile": dataclasses.asdict(self.profile),
                "secret": secret,
                "webhook_path": "/telegram/webhook",
                "telegram_url": endpoints["telegram_api_url"],
                "admin_url": endpoints["admin_api_url"],
                "admin_key": key,
                "ledger": str(self.run_dir / "ledger.jsonl"),
                "capacity_file": str(self.run_dir / "capacity.json"),
                # Chat ids of this run: new users, never those of an earlier run.
                "user_base": 6_000_000_000 + (int(time.time()) % 10**7) * 1000,
            }
            bot_url = endpoints["bot_webhook_url"].rsplit("/telegram/webhook", 1)[0]
            self._locust(plan, bot_url, sampler, environment, placement)
            ended = time.time()
            self._drain(endpoints["postgres_dsn"])
            texts = control_get(endpoints["telegram_api_url"], "texts-delivered")
            ledger = read_ledger(self.run_dir / "ledger.jsonl")
            counts = asyncio.run(account(ledger, endpoints["postgres_dsn"], texts))
            violations = control_get(endpoints["telegram_api_url"], "violations")
            if violations:
                self.notes.append(
                    f"the stand-in saw {len(violations)} invalid Bot API calls, e.g. "
                    f"{violations[0]}"
                )
        finally:
            sampler.stop()
            if self.args.stop:
                stack.down()
                if self.enforced:
                    self.cgroups.remove()
        return self._report(ledger, counts, sampler.samples, endpoints["prometheus_url"], ended)

    # 1. the budget --------------------------------------------------------------------

    def _budget(self) -> Placement:
        why_not = "--no-cgroups was given" if self.args.no_cgroups else MemoryCgroups.unavailable()
        # Fresh groups (their OOM counters at 0): the stack's processes leave them first.
        LocalStack(self.args.state_dir, self.args.port_base).down()
        if why_not is None:
            self.cgroups.remove()
            self.cgroups.create()
            probe = self.cgroups.oom_probe()
            print(f"OOM probe: {probe.detail}")
            self.enforced = probe.killed
            if not probe.killed:
                self.notes.append(
                    f"memory limits NOT enforced: the OOM probe was not killed ({probe.detail})"
                )
            else:
                self.notes.append(f"memory limits enforced: {probe.detail}")
        else:
            self.notes.append(f"memory limits NOT enforced ({why_not}): measured from /proc only")
        print(self.notes[-1])
        if self.args.cpus is not None:
            if not self.enforced:
                raise StackError("--cpus needs the cgroups (root, cgroup v1): " + self.notes[-1])
            self.notes.append(
                f"the stack's services confined to {self.args.cpus} CPU(s) (a cpuset cgroup); "
                "the Telegram stand-in and Locust on the others"
            )
            print(self.notes[-1])
        return self.cgroups.entered if self.enforced else unplaced

    # 2. seed --------------------------------------------------------------------------

    def _seed(self, endpoints: dict[str, str], environment: dict[str, str]) -> str:
        return seed(endpoints, environment, f"load-{self.run_dir.name}")

    # 3. Locust ------------------------------------------------------------------------

    def _locust(
        self,
        plan: dict[str, Any],
        bot_url: str,
        sampler: Sampler,
        environment: dict[str, str],
        placement: Placement,
    ) -> None:
        command = locust_command(self.run_dir, bot_url)
        with (self.run_dir / "locust.log").open("w") as output, self._outside():
            locust = subprocess.Popen(
                command,
                env={**os.environ, "LOADTEST_PLAN": json.dumps(plan)},
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )
        started = time.time()
        jobs = {"backup": self.profile.backup_at, "drill": self.profile.drill_at}
        # Soak's jobs are timed from the plateau's start (the run's start if it has none).
        plateau_start = next(
            (start for name, start, _ in phase_windows(self.profile, started) if name == "plateau"),
            started,
        )
        try:
            while locust.poll() is None:
                time.sleep(PROGRESS_SECONDS)
                elapsed = time.time() - started
                for job, offset in list(jobs.items()):
                    if offset is not None and time.time() >= plateau_start + offset:
                        self._backup_job(job, environment, placement)
                        jobs[job] = None
                print(self._progress(elapsed, sampler), flush=True)
        except KeyboardInterrupt:
            locust.terminate()
            raise
        if locust.returncode not in (0, 1):  # 1: some requests failed, which we judge
            raise StackError(
                f"Locust exited with {locust.returncode}; see {self.run_dir / 'locust.log'}"
            )

    def _progress(self, elapsed: float, sampler: Sampler) -> str:
        _, phase, target = phase_at(self.profile, elapsed)
        rate = failures = 0.0
        history = self.run_dir / "locust_stats_history.csv"
        if history.exists():
            rows = [r for r in _tail_rows(history) if r.get("Name") == "webhook"]
            if rows:
                # POSTs since the last line (Locust's own Requests/s lags by a window).
                total = float(rows[-1]["Total Request Count"] or 0)
                at = float(rows[-1]["Timestamp"])
                seen, seen_at = self._last_count
                rate = (total - seen) / (at - seen_at) if at > seen_at else 0.0
                self._last_count = (total, at)
                failures = float(rows[-1]["Total Failure Count"] or 0)
        memory = ""
        latest = sampler.latest()
        if latest:
            total = report.total_working_set(latest)
            biggest = max(latest["groups"].items(), key=lambda item: item[1]["working_set"])
            memory = (
                f"memory {total / MIB:.0f} MiB (+{self.uncounted // MIB} Grafana) of "
                f"{BUDGET_BYTES // MIB}, largest {biggest[0]} "
                f"{biggest[1]['working_set'] / MIB:.0f} MiB"
            )
        return (
            f"[{elapsed:5.0f}s] {phase.name:<9} target {target:5.1f}/s  webhook {rate:5.1f}/s  "
            f"failed {failures:.0f}  {memory}"
        )

    def _backup_job(self, job: str, environment: dict[str, str], placement: Placement) -> None:
        """Soak: a base backup or a restore drill during the plateau, in the backup group."""
        print(
            f"taking a {'base backup' if job == 'backup' else 'restore drill'} during the "
            f"plateau ..."
        )
        with placement("backup"):
            subprocess.Popen(
                [sys.executable, "-m", "services.backup.cli", job],
                env={
                    **os.environ,
                    **environment,
                    "BACKUP_SERVICE_STATE_DIR": str(self.args.state_dir.resolve()),
                },
                cwd=REPO,
                stdout=(self.run_dir / f"{job}.log").open("w"),
                stderr=subprocess.STDOUT,
            )

    # 4. drain -------------------------------------------------------------------------

    def _drain(self, dsn: str) -> None:
        """Wait for the outbox to send what is due (what the spike deferred; reminders of
        bookings are due later), or for the drain to run out."""
        deadline = time.time() + self.profile.drain_seconds
        pending = asyncio.run(outbox_pending(dsn))
        while pending and time.time() < deadline:
            print(f"draining: {pending} outbox messages still to send ...", flush=True)
            time.sleep(5)
            pending = asyncio.run(outbox_pending(dsn))
        if pending:
            self.notes.append(f"{pending} outbox messages were still waiting after the drain")

    # 5. report ------------------------------------------------------------------------

    def _report(
        self,
        ledger: list[dict[str, Any]],
        counts: Accounting,
        samples: list[dict[str, Any]],
        prometheus: str,
        ended: float,
    ) -> int:
        attempts = [a for e in ledger for a in e["attempts"]]
        started = min((a["at"] for a in attempts), default=time.time())
        windows = phase_windows(self.profile, started)
        steps = _capacity_steps(self.run_dir / "capacity.json")
        plateau = _plateau_window(self.profile, windows, steps)
        in_plateau = [a for a in attempts if plateau[0] <= a["at"] < plateau[1]]
        p50 = report.percentile([a["ms"] for a in in_plateau], 0.5)
        p99 = report.percentile([a["ms"] for a in in_plateau], 0.99)
        achieved = len(in_plateau) / max(1.0, plateau[1] - plateau[0])
        target = plateau[2]
        errors = sum(1 for a in attempts if not 200 <= a["status"] < 300)
        peaks = {
            group: max(
                (s["groups"][group]["working_set"] for s in samples if group in s["groups"]),
                default=0,
            )
            for group in self.limits
        }
        peak_total = max((report.total_working_set(s) for s in samples), default=0) + self.uncounted
        last = samples[-1]["groups"] if samples else {}
        oom_kills = sum(g["oom_kills"] for g in last.values())
        limits = self.profile.thresholds
        checks = [
            report.Check("updates lost", counts.updates_lost, 0, counts.updates_lost == 0),
            report.Check(
                "updates applied twice",
                counts.updates_applied_twice + counts.bookings_twice,
                0,
                counts.updates_applied_twice + counts.bookings_twice == 0,
            ),
            report.Check(
                "payments credited twice",
                counts.payments_credited_twice,
                0,
                counts.payments_credited_twice == 0 and counts.credit_balance_mismatches == 0,
            ),
            report.Check(
                "replies sent twice", counts.replies_sent_twice, 0, counts.replies_sent_twice == 0
            ),
            report.Check("OOM kills", oom_kills, 0, oom_kills == 0),
            *(
                report.Check(
                    f"{group} peak working set",
                    peaks[group] / MIB,
                    self.limits[group] / MIB,
                    peaks[group] <= self.limits[group],
                    " MiB",
                )
                for group in self.limits
            ),
            report.Check(
                "total working set (Grafana at its limit)",
                peak_total / MIB,
                BUDGET_BYTES / MIB,
                peak_total <= BUDGET_BYTES,
                " MiB",
            ),
            report.Check(
                "webhook non-2xx share",
                100 * errors / max(1, len(attempts)),
                100 * limits.webhook_error_ratio,
                errors <= limits.webhook_error_ratio * len(attempts),
                " %",
            ),
        ]
        if not self.profile.capacity:
            checks += [
                report.Check(
                    "webhook p99 at the plateau",
                    p99,
                    limits.webhook_p99_ms,
                    p99 <= limits.webhook_p99_ms,
                    " ms",
                ),
                report.Check(
                    "plateau rate against its target",
                    100 * achieved / target,
                    100 * limits.min_rate_ratio,
                    achieved >= limits.min_rate_ratio * target,
                    " %",
                ),
            ]
        passed = all(check.passed for check in checks) and bool(attempts)
        capacity_text, cpu_per_update = self._capacity(steps, samples)
        if not self.profile.capacity:
            cpu_per_update = _cpu_per_update(samples, plateau[0], plateau[1], len(in_plateau))
            capacity_text = "CPU ms per update at the plateau: " + ", ".join(
                f"{g} {v}" for g, v in sorted(cpu_per_update.items())
            )
        alerts = self._alerts(prometheus, started, ended, windows)
        summary = {
            "profile": self.profile.name,
            "updates_sent": counts.updates_sent,
            "updates_acknowledged": counts.updates_acknowledged,
            "updates_lost": counts.updates_lost,
            "updates_applied_twice": counts.updates_applied_twice + counts.bookings_twice,
            "payments_credited_twice": counts.payments_credited_twice,
            "replies_sent_twice": counts.replies_sent_twice,
            "oom_kills": oom_kills,
            "memory_enforced": self.enforced,
            "memory_peak_bytes": peaks,
            "memory_limit_bytes": self.limits,
            "memory_peak_total_bytes": peak_total,
            "memory_not_run_here_bytes": {name: self.uncounted for name in NOT_RUN_HERE},
            "webhook_p50_ms": round(p50, 1),
            "webhook_p99_ms": round(p99, 1),
            "webhook_non_2xx": errors,
            "webhook_posts": len(attempts),
            "updates_per_second": round(achieved, 2),
            "target_updates_per_second": target,
            "alerts_fired": [{k: a[k] for k in ("alert", "phase")} for a in alerts],
            "capacity_updates_per_second": _sustained(steps),
            "cpu_ms_per_update": cpu_per_update,
            "accounting": counts.to_json(),
            "checks": [dataclasses.asdict(c) for c in checks],
            "passed": passed,
        }
        (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        (self.run_dir / "samples.json").write_text(json.dumps(samples))
        figures = [
            (
                "Memory per service against its compose.yaml limit",
                report.memory_plot(samples, self.limits, windows),
            ),
            (
                "Total against the 2 GiB budget",
                report.total_plot(samples, windows, BUDGET_BYTES, self.uncounted),
            ),
            ("CPU per service", report.cpu_plot(samples, windows)),
            (
                "Webhook: rate and latency (Locust)",
                report.webhook_plot(ledger, windows, [p.rate for p in self.profile.phases]),
            ),
        ]
        try:
            figures += [
                (f"Grafana dashboard: {title}", png)
                for title, png in report.dashboard_plots(prometheus, started, ended, windows)
            ]
        except OSError as error:
            self.notes.append(f"Prometheus could not be read for the dashboards: {error}")
        self.notes += [
            "Grafana runs only in compose: counted at its compose limit "
            f"({self.uncounted // MIB} MiB) in the total.",
            "Outside the budget, as on a VPS: the Telegram Bot API stand-in (Telegram), Locust "
            "(the users), and Alertmanager (compose alerts through Grafana instead).",
            "Both local PgBouncers (1.24, and 1.18 kept for the tests) share PgBouncer's group.",
        ]
        report.write_html(
            self.run_dir / "index.html",
            {
                "name": self.run_dir.name,
                "profile": self.profile.name,
                "checks": checks,
                "figures": figures,
                "alerts": alerts,
                "started": started,
                "duration": ended - started,
                "summary": summary,
                "limits": self.limits,
                "accounting": counts.to_json(),
                "capacity_steps": steps,
                "capacity_text": capacity_text,
                "notes": self.notes,
            },
        )
        self._print(summary, checks, alerts, capacity_text)
        return 0 if passed else 1

    def _outside(self) -> contextlib.AbstractContextManager[None]:
        """Where Locust runs: off the stack's CPUs when they are confined."""
        return self.cgroups.outside() if self.enforced else contextlib.nullcontext()

    def _capacity(
        self, steps: list[dict[str, Any]], samples: list[dict[str, Any]]
    ) -> tuple[str, dict[str, float]]:
        good = [s for s in steps if s.get("passed")]
        if not good:
            return ("no step passed" if steps else ""), {}
        best = good[-1]
        cpu = _cpu_per_update(samples, best["start"], best["end"], best.get("requests", 0))
        crossed = next((s for s in steps if not s.get("passed")), None)
        text = (
            f"The stack sustains {best['rate']} updates/s inside the 2 GiB budget on this machine "
            f"(achieved {best['achieved']:.1f}/s, p99 {best['p99_ms']:.0f} ms)"
            + (
                f"; at {crossed['rate']}/s p99 was {crossed['p99_ms']:.0f} ms, errors "
                f"{crossed['error_ratio']:.2%}."
                if crossed
                else "."
            )
            + " CPU ms per update: "
            + ", ".join(f"{g} {v}" for g, v in sorted(cpu.items()))
        )
        return text, cpu

    def _alerts(
        self, prometheus: str, started: float, ended: float, windows: list[tuple[str, float, float]]
    ) -> list[dict[str, Any]]:
        try:
            return report.alerts_fired(
                prometheus, started, ended + self.profile.drain_seconds, windows
            )
        except OSError as error:
            self.notes.append(f"Prometheus could not be read for the alerts: {error}")
            return []

    def _print(
        self,
        summary: dict[str, Any],
        checks: list[report.Check],
        alerts: list[dict[str, Any]],
        capacity_text: str,
    ) -> None:
        print(
            f"\nupdates sent {summary['updates_sent']}, acknowledged "
            f"{summary['updates_acknowledged']}, "
            f"lost {summary['updates_lost']}, applied twice {summary['updates_applied_twice']}, "
            f"replies twice {summary['replies_sent_twice']}, OOM kills {summary['oom_kills']}"
        )
        print(
            f"plateau: {summary['updates_per_second']}/s of "
            f"{summary['target_updates_per_second']}/s, "
            f"webhook p50 {summary['webhook_p50_ms']} ms p99 {summary['webhook_p99_ms']} ms"
        )
        for group, peak in summary["memory_peak_bytes"].items():
            print(
                f"  {group:<20} peak {peak / MIB:6.0f} MiB of {self.limits[group] / MIB:4.0f} "
                f"MiB ({peak / self.limits[group]:.0%})"
            )
        print(
            f"  total (Grafana at its limit) {summary['memory_peak_total_bytes'] / MIB:.0f} MiB "
            f"of {BUDGET_BYTES // MIB} MiB "
            f"({summary['memory_peak_total_bytes'] / BUDGET_BYTES:.0%}); enforced: {self.enforced}"
        )
        print(
            "alerts fired: " + (", ".join(f"{a['alert']} ({a['phase']})" for a in alerts) or "none")
        )
        if capacity_text:
            print(capacity_text)
        for check in checks:
            if not check.passed:
                print(
                    f"FAIL: {check.name}: {report.fmt(check.value)}{check.unit} (limit "
                    f"{report.fmt(check.limit)}{check.unit})"
                )
        print(
            f"report: {self.run_dir / 'index.html'}  "
            f"({'PASSED' if summary['passed'] else 'FAILED'})"
        )


def _tail_rows(path: Path, size: int = 32 * 1024) -> list[dict[str, str]]:
    """The last rows of a CSV file that grows all run (its header, then its last `size` bytes)."""
    with path.open() as handle:
        header = handle.readline()
        tail = path.stat().st_size - size
        cut = tail > handle.tell()
        handle.seek(max(handle.tell(), tail))
        lines = handle.read().splitlines()
    return list(csv.DictReader([header, *lines[cut:]]))  # the first line read may be cut


def seed(endpoints: dict[str, str], environment: dict[str, str], name: str) -> str:
    """An admin API key for the staff users, and a product for /buy."""
    created = subprocess.run(
        [
            sys.executable,
            "-m",
            "services.admin_api.keys",
            "create",
            "--role",
            "admin",
            "--name",
            name,
        ],
        env={**os.environ, **environment},
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    if created.returncode != 0:
        raise StackError(f"could not make an admin API key: {created.stderr.strip()}")
    key = created.stdout.strip().splitlines()[-1]
    admin = endpoints["admin_api_url"]
    products = _admin(admin, key, "GET", "/products")
    if not any(p.get("active", True) for p in products):
        _admin(
            admin,
            key,
            "POST",
            "/products",
            {
                "code": "credits-10",
                "title": "10 credits",
                "price_stars": 10,
                "credits": 10,
            },
        )
    return key


def locust_command(run_dir: Path, host: str) -> list[str]:
    """Locust headless against the bot at host, its reports and CSV history in run_dir."""
    return [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(REPO / "loadtests" / "locustfile.py"),
        "--headless",
        "--host",
        host,
        "--html",
        str(run_dir / "locust.html"),
        "--csv",
        str(run_dir / "locust"),
        "--csv-full-history",
        "--stop-timeout",
        "30",
        "--loglevel",
        "WARNING",
        "--only-summary",
    ]


def env_file(path: Path) -> dict[str, str]:
    environment = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition("=")
        if key:
            environment[key] = shlex.split(value)[0] if value else ""
    return environment


def _admin(base: str, key: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    request = urllib.request.Request(
        f"{base}{path}",
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as reply:
        return json.load(reply)


def control_get(base: str, path: str) -> Any:
    with urllib.request.urlopen(f"{base}/__control/{path}", timeout=30) as reply:
        return json.load(reply)["result"]


async def outbox_pending(dsn: str, retrying: bool = False) -> int:
    """Outbox messages due; `retrying`: and those waiting for another attempt after Telegram
    refused one (last_error set)."""
    waiting = " OR last_error IS NOT NULL" if retrying else ""
    connection = await asyncpg.connect(dsn)
    try:
        return int(
            await connection.fetchval(
                "SELECT count(*) FROM outbox WHERE status = 'pending' "
                f"AND (available_at <= now(){waiting})"
            )
        )
    finally:
        await connection.close()


def _cpu_per_update(
    samples: list[dict[str, Any]], start: float, end: float, updates: int
) -> dict[str, float]:
    """CPU milliseconds each service's group used per update between start and end."""
    window = [s for s in samples if start <= s["at"] <= end]
    if len(window) < 2 or not updates:
        return {}
    first, last = window[0]["groups"], window[-1]["groups"]
    return {
        group: round(1000 * (last[group]["cpu_seconds"] - first[group]["cpu_seconds"]) / updates, 3)
        for group in first
    }


def _capacity_steps(path: Path) -> list[dict[str, Any]]:
    return list(json.loads(path.read_text())) if path.exists() else []


def _plateau_window(
    profile: Profile, windows: list[tuple[str, float, float]], steps: list[dict[str, Any]]
) -> tuple[float, float, float]:
    """(start, end, target rate) of the plateau; for capacity, of the last step that passed
    (else its first step)."""
    good = [s for s in steps if s.get("passed") and "end" in s]
    if good:
        return good[-1]["start"], good[-1]["end"], float(good[-1]["rate"])
    for phase, (name, start, end) in zip(profile.phases, windows, strict=True):
        if name == "plateau":
            return start, end, phase.rate
    _, start, end = windows[0]
    return start, end, profile.phases[0].rate


def _sustained(steps: list[dict[str, Any]]) -> float | None:
    good = [s["rate"] for s in steps if s.get("passed")]
    return float(good[-1]) if good else None


if __name__ == "__main__":
    sys.exit(main())
