"""Grafana's provisioning files have the shape Grafana's provisioning code requires (no
Grafana server can run here): required fields, unique rule uids, a condition and expressions
that refer to refIds that exist, valid durations and states, datasources that are provisioned,
and no `$` where Grafana would expand it as an environment variable."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from infra.observability.alerts import ALERTS
from infra.observability.generate import GRAFANA_ALERTING_FILE, grafana_alerting
from tests.conftest import REPO

PROVISIONING = REPO / "infra" / "grafana" / "provisioning"
DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w))+$")
UID = re.compile(r"^[a-zA-Z0-9_-]{1,40}$")
NO_DATA_STATES = {"Alerting", "NoData", "OK", "KeepLast"}
EXEC_ERR_STATES = {"Alerting", "Error", "OK", "KeepLast"}
EXPRESSION_TYPES = {"math", "reduce", "resample", "classic_conditions", "threshold"}
# The only `$` meant for Grafana's expansion: the contact point's secrets from its environment.
ENVIRONMENT_REFERENCE = re.compile(r"^\$\{GRAFANA_[A-Z_]+\}$")


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict) and data.get("apiVersion") == 1, path
    return data


def _datasource_uids() -> set[str]:
    data = _load(PROVISIONING / "datasources" / "prometheus.yml")
    return {source["uid"] for source in data["datasources"]}


def _strings(value: Any, path: str = "") -> list[tuple[str, str]]:
    if isinstance(value, str):
        return [(path, value)]
    if isinstance(value, dict):
        return [item for key, child in value.items() for item in _strings(child, f"{path}.{key}")]
    if isinstance(value, list):
        return [item for i, child in enumerate(value) for item in _strings(child, f"{path}[{i}]")]
    return []


def test_the_committed_file_is_the_generated_one() -> None:
    assert yaml.safe_load(GRAFANA_ALERTING_FILE.read_text()) == grafana_alerting()


def test_alert_rules_have_the_shape_grafana_requires() -> None:
    data = _load(GRAFANA_ALERTING_FILE)
    sources = _datasource_uids() | {"__expr__"}
    uids: list[str] = []
    for group in data["groups"]:
        assert {"orgId", "name", "folder", "interval", "rules"} <= set(group)
        assert DURATION.match(group["interval"])
        for rule in group["rules"]:
            assert {
                "uid",
                "title",
                "condition",
                "data",
                "for",
                "noDataState",
                "execErrState",
            } <= set(rule)
            assert UID.match(rule["uid"]), rule["uid"]
            uids.append(rule["uid"])
            assert DURATION.match(rule["for"]), rule["for"]
            assert rule["noDataState"] in NO_DATA_STATES
            assert rule["execErrState"] in EXEC_ERR_STATES
            ref_ids = [query["refId"] for query in rule["data"]]
            assert len(set(ref_ids)) == len(ref_ids)
            assert rule["condition"] in ref_ids
            for query in rule["data"]:
                assert query["datasourceUid"] in sources, query
                model = query["model"]
                assert model["refId"] == query["refId"]
                if query["datasourceUid"] == "__expr__":
                    assert model["type"] in EXPRESSION_TYPES
                    assert model["expression"] in ref_ids and model["expression"] != query["refId"]
                    if model["type"] == "reduce":
                        assert model["settings"]["mode"] == "dropNN"  # NaN never fires
                    if model["type"] == "threshold":
                        evaluator = model["conditions"][0]["evaluator"]
                        assert evaluator["type"] in {"gt", "lt", "within_range", "outside_range"}
                        assert all(isinstance(p, int | float) for p in evaluator["params"])
                else:
                    assert model["expr"] and query["relativeTimeRange"]["from"] > 0
    assert len(set(uids)) == len(uids) == len(ALERTS)


def test_no_dollar_where_grafana_would_expand_it() -> None:
    data = _load(GRAFANA_ALERTING_FILE)
    for path, value in _strings(data):
        if ".annotations." in path:
            continue  # not expanded: alert templates ({{ $labels.job }}) live here
        if "$" in value:
            assert ENVIRONMENT_REFERENCE.match(value), f"{path}: {value!r} would be expanded"


def test_contact_point_and_policy() -> None:
    data = _load(GRAFANA_ALERTING_FILE)
    (point,) = data["contactPoints"]
    (receiver,) = point["receivers"]
    assert receiver["type"] == "telegram"
    # The bot token and the chat are Grafana's environment, never the file's.
    assert receiver["settings"]["bottoken"] == "${GRAFANA_TELEGRAM_BOT_TOKEN}"
    assert receiver["settings"]["chatid"] == "${GRAFANA_TELEGRAM_CHAT_ID}"
    # The message is the provisioned template's (test_notifications renders it).
    (template,) = data["templates"]
    assert {"orgId", "name", "template"} <= set(template)
    assert f'{{{{ template "{template["name"]}" . }}}}' == receiver["settings"]["message"]
    (policy,) = data["policies"]
    assert policy["receiver"] == point["name"]
    for key in ("group_wait", "group_interval", "repeat_interval"):
        assert DURATION.match(policy[key])


def test_dashboard_provider_points_at_the_dashboards() -> None:
    data = _load(PROVISIONING / "dashboards" / "botstack.yml")
    (provider,) = data["providers"]
    assert provider["type"] == "file" and provider["options"]["path"]
