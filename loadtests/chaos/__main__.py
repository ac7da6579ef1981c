"""make chaos: fault injection under Telegram-like load, with figures.

    python -m loadtests.chaos [--scenario NAME[,NAME...]|all] [--list] [--help]

Each scenario runs steady traffic, injects its fault for a set time, ends it, waits until the
stack has caught up and checks: nothing lost, nothing applied twice, no reply sent twice,
updates applied again within 10 s of the fault's end, the expected alert fired, every alert
resolved afterwards. The figures are printed as a table and written to
loadtests/reports/<timestamp>/chaos.json and index.html; exit status 1 when a scenario failed.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path

from infra.system import StackError
from loadtests.chaos import figures
from loadtests.chaos.runner import Runner, Settings
from loadtests.chaos.scenarios import SCENARIOS
from loadtests.run import REPO, REPORTS

DEFAULT_PORT_BASE = 25730


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.chaos",
        description=__doc__.split("\n\n", 2)[2] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="scenarios:\n"
        + "\n".join(f"  {s.name:<22} {s.summary}" for s in SCENARIOS.values()),
    )
    parser.add_argument(
        "--scenario",
        default="all",
        help="a scenario's name, several separated by commas, or all (the default)",
    )
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    parser.add_argument(
        "--state-dir", type=Path, default=REPO / ".stack-chaos", help="the chaos stack's state"
    )
    parser.add_argument(
        "--port-base", type=int, default=DEFAULT_PORT_BASE, help="the chaos stack's ports"
    )
    parser.add_argument(
        "--proxy-port",
        type=int,
        help="the harness's proxies (bot->PgBouncer, webhook balancer, replica 2: 4 ports "
        "from here; default: port base + 2090)",
    )
    parser.add_argument("--reports", type=Path, default=REPORTS, help="where reports go")
    parser.add_argument("--rate", type=float, default=5.0, help="updates/s (default 5)")
    parser.add_argument("--before", type=float, default=10.0, help="seconds before the fault")
    parser.add_argument("--after", type=float, default=45.0, help="seconds after the fault")
    parser.add_argument("--stop", action="store_true", help="stop the chaos stack afterwards")
    return parser.parse_args(argv)


def chosen(names: str) -> list[str]:
    if names == "all":
        return list(SCENARIOS)
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in SCENARIOS]
    if unknown:
        known = ", ".join(SCENARIOS)
        raise SystemExit(f"error: unknown scenario {', '.join(unknown)}; the scenarios: {known}")
    return wanted


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.list:
        for scenario in SCENARIOS.values():
            print(f"{scenario.name:<22} {scenario.summary}")
        return 0
    names = chosen(args.scenario)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = args.reports / stamp
    args.reports.mkdir(parents=True, exist_ok=True)
    for suffix in range(2, 100):  # two runs started within the same second
        try:
            run_dir.mkdir()
            break
        except FileExistsError:
            run_dir = args.reports / f"{stamp}-{suffix}"
    settings = Settings(
        args.state_dir,
        args.port_base,
        args.proxy_port or args.port_base + 2090,
        args.rate,
        args.before,
        args.after,
    )
    # SIGTERM and SIGHUP end the run as Ctrl-C does: through every `finally`, so that a
    # scenario's mount or memory group is undone (a SIGKILLed run's, by the next run's start).
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    runner = Runner(settings, run_dir)
    rows: list[figures.Row] = []
    try:
        runner.start()
        for name in names:
            rows.append(runner.run_safely(SCENARIOS[name]))
            print(figures.HEADER)
            for row in rows:
                print(figures.table_line(row), flush=True)
            _write(run_dir, rows)
    except StackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        runner.stop(stack_too=args.stop)
    print(f"\nreport: {run_dir / 'index.html'}")
    failed = [r.scenario for r in rows if not r.passed]
    for row in rows:
        for problem in row.details["problems"]:
            print(f"FAILED {row.scenario}: {problem}")
    return 1 if failed else 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _write(run_dir: Path, rows: list[figures.Row]) -> None:
    (run_dir / "chaos.json").write_text(json.dumps([r.to_json() for r in rows], indent=2) + "\n")
    notes = {r.scenario: r.details.get("notes", []) for r in rows}
    (run_dir / "index.html").write_text(
        figures.html_report(rows, notes, f"Chaos run {run_dir.name}")
    )


if __name__ == "__main__":
    sys.exit(main())
