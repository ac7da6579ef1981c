"""Renders the alert catalogue (alerts.py) into the files Prometheus and Grafana load:

- infra/prometheus/rules/botstack.rules.yml: one rule per alert (the local stack's Prometheus
  evaluates them, Alertmanager delivers them; promtool checks them);
- infra/grafana/provisioning/alerting/botstack.yml: the same alerts as Grafana-managed rules
  (query -> reduce dropping NaN -> threshold), the staff chat's Telegram contact point (token
  and chat id from Grafana's environment, never in the file) and the notification policy.

`python -m infra.observability` writes them; `--check` fails when the committed files differ
(a test runs it)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from .alerts import ALERTS, Alert

REPO = Path(__file__).resolve().parents[2]
RULES_FILE = REPO / "infra" / "prometheus" / "rules" / "botstack.rules.yml"
GRAFANA_ALERTING_FILE = REPO / "infra" / "grafana" / "provisioning" / "alerting" / "botstack.yml"
# The provisioned Prometheus datasource's uid (infra/grafana/provisioning/datasources).
DATASOURCE_UID = "prometheus"
GROUP = "botstack"
FOLDER = "botstack"
EVALUATION_INTERVAL = "30s"
CONTACT_POINT = "staff-telegram"
HEADER = "# Generated from infra/observability/alerts.py (python -m infra.observability).\n"
# Grafana's threshold has "gt" and "lt" only: "at or above t" is "above t less this".
INCLUSIVE_EPSILON = 1e-9


def prometheus_rules(alerts: tuple[Alert, ...] = ALERTS) -> dict[str, Any]:
    return {
        "groups": [
            {
                "name": GROUP,
                "rules": [
                    {
                        "alert": alert.name,
                        "expr": alert.condition,
                        "for": alert.for_,
                        "labels": {"severity": alert.severity},
                        "annotations": {
                            "summary": alert.summary,
                            "description": alert.meaning,
                            "runbook": alert.runbook,
                        },
                    }
                    for alert in alerts
                ],
            }
        ]
    }


def uid(alert: Alert) -> str:
    """A stable rule uid (Grafana allows 40 characters of [a-zA-Z0-9-_])."""
    return "botstack-" + re.sub(r"(?<!^)(?=[A-Z])", "-", alert.name).lower()[:31]


def _threshold(alert: Alert) -> dict[str, Any]:
    kind = "gt" if alert.op.startswith(">") else "lt"
    value = alert.threshold
    if alert.op == ">=":
        value -= INCLUSIVE_EPSILON
    elif alert.op == "<=":
        value += INCLUSIVE_EPSILON
    return {"type": kind, "params": [value]}


def grafana_rule(alert: Alert) -> dict[str, Any]:
    return {
        "uid": uid(alert),
        "title": alert.name,
        "condition": "C",
        "data": [
            {
                "refId": "A",
                "relativeTimeRange": {"from": 600, "to": 0},
                "datasourceUid": DATASOURCE_UID,
                "model": {"refId": "A", "expr": alert.expr, "instant": True, "range": False},
            },
            {
                "refId": "B",
                "datasourceUid": "__expr__",
                "model": {
                    "refId": "B",
                    "type": "reduce",
                    "expression": "A",
                    "reducer": "last",
                    # A series that is NaN (0/0) is dropped, so it neither fires nor errors.
                    "settings": {"mode": "dropNN"},
                },
            },
            {
                "refId": "C",
                "datasourceUid": "__expr__",
                "model": {
                    "refId": "C",
                    "type": "threshold",
                    "expression": "B",
                    "conditions": [{"evaluator": _threshold(alert)}],
                },
            },
        ],
        # No data is not an alert (each catalogue expression has data when the stack runs;
        # a target that stops answering fires TargetDown). A query that errors is: it means
        # Prometheus itself is unreachable from Grafana.
        "noDataState": "OK",
        "execErrState": "Error",
        "for": alert.for_,
        "labels": {"severity": alert.severity},
        "annotations": {
            "summary": alert.summary,
            "description": alert.meaning,
            "runbook": alert.runbook,
        },
    }


def grafana_alerting(alerts: tuple[Alert, ...] = ALERTS) -> dict[str, Any]:
    return {
        "apiVersion": 1,
        "groups": [
            {
                "orgId": 1,
                "name": GROUP,
                "folder": FOLDER,
                "interval": EVALUATION_INTERVAL,
                "rules": [grafana_rule(alert) for alert in alerts],
            }
        ],
        "contactPoints": [
            {
                "orgId": 1,
                "name": CONTACT_POINT,
                "receivers": [
                    {
                        "uid": CONTACT_POINT,
                        "type": "telegram",
                        # Grafana expands these from its environment (compose.yaml sets them).
                        "settings": {
                            "bottoken": "${GRAFANA_TELEGRAM_BOT_TOKEN}",
                            "chatid": "${GRAFANA_TELEGRAM_CHAT_ID}",
                        },
                    }
                ],
            }
        ],
        "policies": [
            {
                "orgId": 1,
                "receiver": CONTACT_POINT,
                "group_by": ["alertname"],
                "group_wait": "30s",
                "group_interval": "5m",
                "repeat_interval": "4h",
            }
        ],
    }


def render(data: dict[str, Any]) -> str:
    return HEADER + yaml.safe_dump(data, sort_keys=False, width=100, allow_unicode=True)


def outputs() -> dict[Path, str]:
    return {
        RULES_FILE: render(prometheus_rules()),
        GRAFANA_ALERTING_FILE: render(grafana_alerting()),
    }
