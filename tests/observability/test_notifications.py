"""What the staff chat reads, rendered by Alertmanager's own template engine (amtool, from the
same Debian package as the local stack's Alertmanager): a firing alert with its summary and
what to do; a resolved one saying it resolved, when, and which instance, without the summary
whose value is from when it fired. Grafana's provisioning carries the same template, and its
rule summaries read the reduced value (Grafana's $value is a string of every expression)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.observability.alerts import ALERTS
from infra.observability.generate import GRAFANA_ALERTING_FILE
from infra.observability.notifications import GRAFANA_MESSAGE, MESSAGE, TEMPLATE_NAME
from infra.system import Apt, StackError

SUMMARY = "bot uses 90% of its database pool"


@pytest.fixture(scope="module")
def amtool() -> Path:
    found = shutil.which("amtool")
    if found is None:
        Apt().install(["prometheus-alertmanager"], "amtool (Alertmanager)")
        found = shutil.which("amtool")
    if found is None:
        raise StackError("amtool not found; install the Debian package prometheus-alertmanager")
    return Path(found)


def _alert(status: str, job: str, ends_at: str) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": "DatabasePoolSaturated", "severity": "page", "job": job},
        "annotations": {"summary": f"{job} uses 90% of its database pool", "runbook": "Look."},
        "startsAt": "2026-12-03T10:00:00Z",
        "endsAt": ends_at,
    }


def _render(
    amtool: Path,
    tmp_path: Path,
    message: str,
    alerts: list[dict[str, Any]],
    definitions: str = "",
) -> str:
    """The text a receiver's message (with these template definitions) gives for one
    notification of these alerts."""
    (tmp_path / "message.tmpl").write_text(definitions)
    data = {
        "receiver": "staff-telegram",
        "status": "firing" if any(a["status"] == "firing" for a in alerts) else "resolved",
        "alerts": alerts,
        "groupLabels": {"alertname": "DatabasePoolSaturated"},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager",
    }
    (tmp_path / "data.json").write_text(json.dumps(data))
    result = subprocess.run(
        [
            amtool,
            "template",
            "render",
            f"--template.glob={tmp_path / 'message.tmpl'}",
            f"--template.text={message}",
            f"--template.data={tmp_path / 'data.json'}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_a_firing_alert_shows_its_summary_and_what_to_do(amtool: Path, tmp_path: Path) -> None:
    text = _render(amtool, tmp_path, MESSAGE, [_alert("firing", "bot", "0001-01-01T00:00:00Z")])
    assert text.strip() == f"[FIRING] DatabasePoolSaturated (page)\n{SUMMARY}\nWhat to do: Look."


def test_a_resolved_alert_says_so_without_the_value_from_when_it_fired(
    amtool: Path, tmp_path: Path
) -> None:
    resolved = _alert("resolved", "bot", "2026-12-03T10:05:30Z")
    firing = _alert("firing", "admin-api", "0001-01-01T00:00:00Z")
    text = _render(amtool, tmp_path, MESSAGE, [resolved, firing])
    assert text.strip().split("\n\n") == [
        "[FIRING] DatabasePoolSaturated (page)\n"
        "admin-api uses 90% of its database pool\nWhat to do: Look.",
        "[RESOLVED] DatabasePoolSaturated (page) job=bot\n"
        "Resolved at 2026-12-03 10:05:30 UTC; it fired at 2026-12-03 10:00:00 UTC.",
    ]
    assert SUMMARY not in text


def test_grafana_sends_the_same_message_as_plain_text(amtool: Path, tmp_path: Path) -> None:
    data = yaml.safe_load(GRAFANA_ALERTING_FILE.read_text())
    (template,) = data["templates"]
    (receiver,) = data["contactPoints"][0]["receivers"]
    assert receiver["settings"]["message"] == GRAFANA_MESSAGE
    assert receiver["settings"]["parse_mode"] == "None"
    assert template["name"] == TEMPLATE_NAME
    # The provisioned template and the contact point's message, rendered together.
    resolved = [_alert("resolved", "bot", "2026-12-03T10:05:30Z")]
    grafana = _render(amtool, tmp_path, GRAFANA_MESSAGE, resolved, template["template"])
    assert grafana == _render(amtool, tmp_path, MESSAGE, resolved)
    assert grafana.startswith("[RESOLVED] DatabasePoolSaturated (page) job=bot\n")


def test_grafana_summaries_read_the_reduced_value() -> None:
    data = yaml.safe_load(GRAFANA_ALERTING_FILE.read_text())
    rules = data["groups"][0]["rules"]
    assert len(rules) == len(ALERTS)
    for rule in rules:
        for text in rule["annotations"].values():
            assert not re.search(r"\$value\b", text), f"{rule['title']}: {text}"
    pool = next(rule for rule in rules if rule["title"] == "DatabasePoolSaturated")
    assert "{{ $values.B.Value | humanizePercentage }}" in pool["annotations"]["summary"]


def test_no_summary_prints_a_rate_as_a_count_or_a_small_value_with_an_si_prefix() -> None:
    """humanize prints 0.5 as "500m" (read: 500 minutes); increase() extrapolates, so its
    "count" is fractional ("ran 1.143 statements")."""
    for alert in ALERTS:
        assert "| humanize }}" not in alert.summary, alert.name
        assert "increase(" not in alert.expr or "$value" not in alert.summary, alert.name
