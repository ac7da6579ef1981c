"""Every alert has a runbook (docs/runbooks/<AlertName>.md: what it means, how to confirm it,
what to do), and both engines' rules link it."""

from __future__ import annotations

import yaml

from infra.observability.alerts import ALERTS
from infra.observability.generate import GRAFANA_ALERTING_FILE, RULES_FILE
from infra.observability.runbooks import RUNBOOK_DIR, runbook_url
from tests.conftest import REPO

SECTIONS = ("## What it means", "## How to confirm", "## What to do")


def test_every_alert_has_a_runbook() -> None:
    missing = [alert.name for alert in ALERTS if not (RUNBOOK_DIR / f"{alert.name}.md").exists()]
    assert missing == [], (
        f"no runbook for {missing}: add each alert's meaning and runbook to "
        "infra/observability/alerts.py and run `uv run python -m infra.observability`, which "
        f"writes docs/runbooks/<AlertName>.md ({', '.join(f'{n}.md' for n in missing)})"
    )
    for alert in ALERTS:
        text = (RUNBOOK_DIR / f"{alert.name}.md").read_text()
        absent = [section for section in SECTIONS if section not in text]
        assert absent == [], f"docs/runbooks/{alert.name}.md lacks {absent}"
        assert alert.condition in text, f"docs/runbooks/{alert.name}.md: not the current rule"


def test_no_runbook_is_left_without_its_alert() -> None:
    names = {alert.name for alert in ALERTS} | {"README"}
    orphans = sorted(path.stem for path in RUNBOOK_DIR.glob("*.md") if path.stem not in names)
    assert orphans == [], f"runbooks of alerts no longer in the catalogue: {orphans}"


def test_both_engines_link_each_alert_to_its_runbook() -> None:
    prometheus = yaml.safe_load(RULES_FILE.read_text())
    grafana = yaml.safe_load(GRAFANA_ALERTING_FILE.read_text())
    links = {
        rule["alert"]: rule["annotations"].get("runbook_url")
        for group in prometheus["groups"]
        for rule in group["rules"]
    }
    grafana_links = {
        rule["title"]: rule["annotations"].get("runbook_url")
        for group in grafana["groups"]
        for rule in group["rules"]
    }
    for alert in ALERTS:
        url = runbook_url(alert)
        assert (REPO / url).exists(), url
        assert links[alert.name] == url, alert.name
        assert grafana_links[alert.name] == url, alert.name
