"""No metric of ours names a label that Prometheus sets on every scraped series (`job`,
`instance`): the scrape renames ours to `exported_job`, and a rule matching `{job="..."}`
then never has data (MaintenanceFailing and TableGrowingWithoutRetention did exactly that)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
METRIC_TYPES = {"Counter", "Gauge", "Histogram", "Summary", "Info", "Enum"}
RESERVED = {"job", "instance"}


def _label_names(call: ast.Call) -> set[str]:
    candidates = [k.value for k in call.keywords if k.arg == "labelnames"]
    candidates += call.args[2:3]  # Gauge(name, documentation, labelnames, ...)
    names: set[str] = set()
    for node in candidates:
        if isinstance(node, ast.List | ast.Tuple):
            names |= {
                e.value
                for e in node.elts
                if isinstance(e, ast.Constant) and isinstance(e.value, str)
            }
    return names


def test_no_metric_label_collides_with_the_scrape_labels() -> None:
    clashes = []
    for path in sorted((REPO / "services").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", getattr(node.func, "attr", None))
            if name in METRIC_TYPES and (clash := _label_names(node) & RESERVED):
                clashes.append(f"{path.relative_to(REPO)}:{node.lineno} {sorted(clash)}")
    assert clashes == [], clashes
