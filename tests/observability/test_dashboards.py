"""The dashboards Grafana loads: what the code generates, valid for Grafana's dashboard model
(decoded by the foundation SDK's models, which follow Grafana's schema), a fixed uid each,
the provisioned datasource by uid, a unit on every panel; and every panel's query, with
Grafana's macros substituted, returns data from the test stack's real Prometheus after a
little real traffic, every metric name in it being one Prometheus has."""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import sys
import time
from typing import Any

import httpx
import pytest
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models.dashboard import Dashboard

from infra.observability.dashboards import DASHBOARDS
from infra.observability.generate import DASHBOARDS_DIR
from infra.stack import LocalStack
from tests.conftest import REPO

# What Grafana puts in place of its macros, for a dashboard refreshed every 30 s.
MACROS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}
FUNCTIONS_AND_KEYWORDS = {
    "sum", "max", "min", "avg", "by", "rate", "increase", "histogram_quantile", "time",
    "clamp_min", "vector", "or", "and", "le", "bool", "on", "without",
}  # fmt: skip


def _dashboards() -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in sorted(DASHBOARDS_DIR.glob("*.json"))]


def _queries(board: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in board["panels"] for target in panel["targets"]]


def _substituted(expr: str) -> str:
    for macro, value in MACROS.items():
        expr = expr.replace(macro, value)
    return expr


def _metric_names(expr: str) -> set[str]:
    without_strings = re.sub(r'"[^"]*"', '""', expr)
    without_labels = re.sub(r"\{[^}]*\}", "", without_strings)
    without_ranges = re.sub(r"\[[^\]]*\]", "", without_labels)
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", without_ranges))
    grouped = set(re.findall(r"(?:by|without) \(([^)]*)\)", without_ranges))
    labels = {label.strip() for group in grouped for label in group.split(",")}
    return {w for w in words - FUNCTIONS_AND_KEYWORDS - labels if "_" in w}


def test_there_is_one_committed_dashboard_per_spec() -> None:
    # That each is what the code generates: test_rules' check of every generated file.
    assert len(_dashboards()) == len(DASHBOARDS) == 4


def test_dashboards_fit_grafanas_model_and_conventions() -> None:
    register_default_plugins()  # panels and queries decode into their typed models
    uids = set()
    for board in _dashboards():
        decoded = Dashboard.from_json(board)
        assert decoded.uid == board["uid"] and decoded.title
        assert json.loads(json.dumps(decoded.to_json(), default=str))["uid"] == board["uid"]
        uids.add(board["uid"])
        assert board["panels"], board["title"]
        for panel in board["panels"]:
            assert panel["type"] == "timeseries"
            assert panel["datasource"] == {"type": "prometheus", "uid": "prometheus"}
            assert panel["fieldConfig"]["defaults"]["unit"], panel["title"]
            assert panel["targets"], panel["title"]
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == "prometheus"
    assert uids == {spec.uid for spec in DASHBOARDS}


def test_alert_thresholds_are_drawn() -> None:
    database = next(b for b in _dashboards() if b["uid"] == "botstack-database")
    pool = next(p for p in database["panels"] if p["title"].startswith("Pool use"))
    steps = pool["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [step["value"] for step in steps] == [None, 0.8]
    assert pool["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] == "line"


async def _traffic(endpoints: dict[str, str], stack: LocalStack) -> None:
    """A little real traffic: users writing to the bot, an admin API request, a drill."""
    async with httpx.AsyncClient(base_url=endpoints["telegram_api_url"]) as telegram:
        for user in range(3):
            await telegram.post(
                "/__control/messages", json={"user_id": 9100 + user, "text": "/start"}
            )
    async with httpx.AsyncClient(base_url=endpoints["admin_api_url"]) as admin:
        await admin.get("/health/ready")
    env = {
        key: "".join(shlex.split(value))
        for key, _, value in (
            line.partition("=") for line in stack.paths.env.read_text().split("\n")
        )
        if key
    }
    drill = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.backup.cli",
        "drill",
        cwd=REPO,
        env={**env, "PATH": "/usr/bin:/bin", "BACKUP_SERVICE_STATE_DIR": str(stack.paths.root)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(drill.communicate(), 300)
    assert drill.returncode == 0, output.decode()


async def test_every_panel_query_returns_data(stack: LocalStack, endpoints: dict[str, str]) -> None:
    await _traffic(endpoints, stack)
    queries = [query for board in _dashboards() for query in _queries(board)]
    async with httpx.AsyncClient(base_url=endpoints["prometheus_url"], timeout=10) as http:
        deadline = time.monotonic() + 90  # the new series reach Prometheus at its next scrape
        while True:
            names = set((await http.get("/api/v1/label/__name__/values")).json()["data"])
            problems = []
            for query in queries:
                missing = {n for n in _metric_names(query) if n not in names}
                missing -= {n for n in missing if f"{n}_bucket" in names}
                if missing:
                    problems.append(f"{query}: no such metric {sorted(missing)}")
                    continue
                result = await http.get("/api/v1/query", params={"query": _substituted(query)})
                if not result.json()["data"]["result"]:
                    problems.append(f"{query}: no data")
            if not problems:
                return
            if time.monotonic() > deadline:
                pytest.fail("\n".join(problems))
            await asyncio.sleep(2)


def test_panels_cover_what_the_issue_lists() -> None:
    titles = {panel["title"] for board in _dashboards() for panel in board["panels"]}
    for wanted in ("Pool use per service", "Query latency", "PgBouncer clients", "Disk use"):
        assert any(title.startswith(wanted) for title in titles), wanted
