"""The report of a load run: index.html (readable offline: the plots are embedded), with the
thresholds table, the accounting, memory per service against its limit and CPU over the run
with the phases marked, the Grafana dashboards' panels drawn from Prometheus over the run,
the alerts that fired, the capacity steps, and a link to Locust's own report."""

from __future__ import annotations

import base64
import html
import io
import itertools
import json
import math
import re
import urllib.parse
import urllib.request
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

REPO = Path(__file__).resolve().parent.parent
DASHBOARDS = REPO / "dashboards"
MIB = 1024**2
PHASE_COLOURS = {"ramp": "#dde8f6", "plateau": "#e3f3e3", "spike": "#fbe0d8", "recovery": "#efe6f7"}


@dataclass(frozen=True)
class Check:
    name: str
    value: float
    limit: float
    passed: bool
    unit: str = ""


def query_range(prometheus: str, query: str, start: float, end: float, step: float) -> list[Any]:
    params = urllib.parse.urlencode({"query": query, "start": start, "end": end, "step": step})
    with urllib.request.urlopen(f"{prometheus}/api/v1/query_range?{params}", timeout=30) as reply:
        data = json.load(reply)
    return list(data["data"]["result"])


def alerts_fired(
    prometheus: str, start: float, end: float, windows: list[tuple[str, float, float]]
) -> list[dict[str, Any]]:
    """Each alert that was firing during the run: when it began and ended, and in which phase
    it began."""
    fired = []
    for series in query_range(prometheus, 'ALERTS{alertstate="firing"}', start, end, 5):
        times = [float(t) for t, _ in series["values"]]
        begun = times[0]
        phase = next((name for name, s, e in windows if s <= begun < e), "after the phases")
        fired.append(
            {
                "alert": series["metric"].get("alertname", "?"),
                "severity": series["metric"].get("severity", ""),
                "from": begun,
                "to": times[-1],
                "phase": phase,
            }
        )
    return sorted(fired, key=lambda a: a["from"])


def _figure_data(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


def _shade(axis: Any, windows: list[tuple[str, float, float]], origin: float) -> None:
    for index, (name, start, end) in enumerate(windows):
        # Capacity's steps have no colour of their own: alternate two greys.
        colour = PHASE_COLOURS.get(name, ("#eeeeee", "#f7f7f7")[index % 2])
        axis.axvspan(start - origin, end - origin, color=colour, zorder=0)


def memory_plot(
    samples: list[dict[str, Any]],
    limits: dict[str, int],
    windows: list[tuple[str, float, float]],
) -> str:
    groups = sorted({g for s in samples for g in s["groups"]})
    columns = 3
    rows = math.ceil(len(groups) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(13, 2.6 * rows), squeeze=False)
    origin = windows[0][1]
    for axis, group in zip(axes.flat, groups, strict=False):
        points = [(s["at"] - origin, s["groups"][group]) for s in samples if group in s["groups"]]
        _shade(axis, windows, origin)
        axis.plot(
            [t for t, _ in points], [g["working_set"] / MIB for _, g in points], label="working set"
        )
        axis.plot([t for t, _ in points], [g["rss"] / MIB for _, g in points], label="RSS", lw=0.8)
        axis.axhline(limits[group] / MIB, color="red", ls="--", lw=1, label="limit")
        axis.set_title(f"{group} (limit {limits[group] // MIB} MiB)", fontsize=9)
        axis.set_ylim(0, limits[group] / MIB * 1.1)
        axis.tick_params(labelsize=7)
    for axis in list(axes.flat)[len(groups) :]:
        axis.axis("off")
    axes.flat[0].legend(fontsize=7)
    figure.supxlabel("seconds into the run")
    figure.supylabel("MiB")
    return _figure_data(figure)


def total_plot(
    samples: list[dict[str, Any]],
    windows: list[tuple[str, float, float]],
    budget: int,
    uncounted: int,
) -> str:
    """The total working set of the services run here, plus what compose runs and this
    machine cannot (Grafana) at its limit, against the budget."""
    origin = windows[0][1]
    figure, axis = plt.subplots(figsize=(13, 3))
    _shade(axis, windows, origin)
    times = [s["at"] - origin for s in samples]
    total = [total_working_set(s) for s in samples]
    axis.plot(times, [t / MIB for t in total], label="services run here")
    axis.plot(times, [(t + uncounted) / MIB for t in total], label="+ Grafana at its limit")
    axis.axhline(budget / MIB, color="red", ls="--", label="2 GiB budget")
    axis.set_ylabel("MiB")
    axis.set_ylim(0, budget / MIB * 1.1)
    axis.legend(fontsize=8)
    return _figure_data(figure)


def total_working_set(sample: dict[str, Any]) -> int:
    if "total" in sample:
        return int(sample["total"]["working_set"])
    return sum(int(g["working_set"]) for g in sample["groups"].values())


def cpu_plot(samples: list[dict[str, Any]], windows: list[tuple[str, float, float]]) -> str:
    origin = windows[0][1]
    figure, axis = plt.subplots(figsize=(13, 3.2))
    _shade(axis, windows, origin)
    for group in sorted({g for s in samples for g in s["groups"]}):
        series = [
            (s["at"], s["groups"][group]["cpu_seconds"]) for s in samples if group in s["groups"]
        ]
        rates = [
            (b[0] - origin, (b[1] - a[1]) / (b[0] - a[0]))
            for a, b in itertools.pairwise(series)
            if b[0] > a[0]
        ]
        axis.plot([t for t, _ in rates], [r for _, r in rates], label=group, lw=0.9)
    axis.set_ylabel("CPU cores")
    axis.legend(fontsize=7, ncol=5)
    return _figure_data(figure)


def webhook_plot(
    ledger: list[dict[str, Any]], windows: list[tuple[str, float, float]], targets: list[float]
) -> str:
    """Deliveries per second and their p99 in 5 s windows, against the target rate."""
    origin = windows[0][1]
    buckets: dict[int, list[float]] = defaultdict(list)
    for entry in ledger:
        for attempt in entry["attempts"]:
            buckets[int((attempt["at"] - origin) // 5)].append(attempt["ms"])
    figure, (rate_axis, latency_axis) = plt.subplots(2, 1, figsize=(13, 5), sharex=True)
    for axis in (rate_axis, latency_axis):
        _shade(axis, windows, origin)
    keys = sorted(buckets)
    rate_axis.plot(
        [k * 5 for k in keys], [len(buckets[k]) / 5 for k in keys], label="webhook POSTs/s"
    )
    rate_axis.step(
        [s - origin for _, s, _ in windows] + [windows[-1][2] - origin],
        [*targets, targets[-1]],
        where="post",
        color="grey",
        ls="--",
        label="target",
    )
    rate_axis.set_ylabel("per second")
    rate_axis.legend(fontsize=8)
    latency_axis.plot(
        [k * 5 for k in keys], [percentile(buckets[k], 0.99) for k in keys], label="p99"
    )
    latency_axis.plot(
        [k * 5 for k in keys], [percentile(buckets[k], 0.5) for k in keys], label="p50"
    )
    latency_axis.set_ylabel("ms")
    latency_axis.set_yscale("log")
    latency_axis.legend(fontsize=8)
    latency_axis.set_xlabel("seconds into the run")
    return _figure_data(figure)


def percentile(values: list[float], share: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def dashboard_plots(
    prometheus: str, start: float, end: float, windows: list[tuple[str, float, float]]
) -> list[tuple[str, str]]:
    """Each dashboard's panels, their queries run over the run with query_range: what Grafana
    would have shown. Returns (dashboard title, png) pairs."""
    step = max(5.0, (end - start) / 300)
    # Grafana's $__rate_interval is at least four scrape intervals; the load stack scrapes
    # every 5 s.
    macros = {
        "$__rate_interval": "30s",
        "$__interval": f"{int(step)}s",
        "$__range": f"{int(end - start)}s",
    }
    plots = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        board = json.loads(path.read_text())
        panels = [p for p in board["panels"] if p.get("targets")]
        columns = 3
        rows = math.ceil(len(panels) / columns)
        figure, axes = plt.subplots(rows, columns, figsize=(13, 2.6 * rows), squeeze=False)
        for axis, panel in zip(axes.flat, panels, strict=False):
            _shade(axis, windows, start)
            for target in panel["targets"]:
                expr = target["expr"]
                for macro, value in macros.items():
                    expr = expr.replace(macro, value)
                try:
                    series = query_range(prometheus, expr, start, end, step)
                except OSError:
                    series = []
                for item in series[:8]:
                    legend = _legend(target.get("legendFormat", ""), item["metric"])
                    axis.plot(
                        [float(t) - start for t, _ in item["values"]],
                        [_number(v) for _, v in item["values"]],
                        label=legend,
                        lw=0.9,
                    )
            axis.set_title(panel.get("title", ""), fontsize=9)
            axis.tick_params(labelsize=7)
            if axis.get_legend_handles_labels()[0]:
                axis.legend(fontsize=6)
        for axis in list(axes.flat)[len(panels) :]:
            axis.axis("off")
        plots.append((board["title"], _figure_data(figure)))
    return plots


def _legend(template: str, labels: dict[str, str]) -> str:
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template) or "value"


def _number(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        return float("nan")


def write_html(path: Path, context: dict[str, Any]) -> None:
    checks: list[Check] = context["checks"]
    rows = "".join(
        f"<tr class={'pass' if c.passed else 'fail'}><td>{html.escape(c.name)}</td>"
        f"<td>{fmt(c.value)}{c.unit}</td><td>{fmt(c.limit)}{c.unit}</td>"
        f"<td>{'pass' if c.passed else 'FAIL'}</td></tr>"
        for c in checks
    )
    figures = "".join(
        f"<h3>{html.escape(title)}</h3><img src='data:image/png;base64,{png}'>"
        for title, png in context["figures"]
    )
    alerts = (
        "".join(
            f"<tr><td>{html.escape(a['alert'])}</td><td>{html.escape(a['severity'])}</td>"
            f"<td>{a['from'] - context['started']:.0f} "
            f"s</td><td>{a['to'] - context['started']:.0f} s</td>"
            f"<td>{html.escape(a['phase'])}</td></tr>"
            for a in context["alerts"]
        )
        or "<tr><td colspan=5>none fired</td></tr>"
    )
    memory = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{peak / MIB:.0f} "
        f"MiB</td><td>{context['limits'][name] / MIB:.0f} MiB</td>"
        f"<td>{peak / context['limits'][name]:.0%}</td></tr>"
        for name, peak in context["summary"]["memory_peak_bytes"].items()
    )
    capacity = "".join(
        f"<tr><td>{s['rate']}/s</td><td>{s.get('achieved', 0):.1f}/s</td>"
        f"<td>{s.get('p99_ms', 0):.0f} ms</td><td>{s.get('error_ratio', 0):.2%}</td>"
        f"<td>{'pass' if s.get('passed') else 'FAIL'}</td></tr>"
        for s in context["capacity_steps"]
    )
    capacity_section = (
        "<h2>Capacity</h2><table><tr><th>target</th><th>achieved</th><th>p99</th>"
        f"<th>errors</th><th></th></tr>{capacity}</table><p>{html.escape(context['capacity_text'])}</p>"
        if context["capacity_steps"]
        else ""
    )
    notes = "".join(f"<li>{html.escape(note)}</li>" for note in context["notes"])
    verdict = "PASSED" if context["summary"]["passed"] else "FAILED"
    path.write_text(
        f"""<!doctype html><html><head><meta charset="utf-8">
<title>Load run {html.escape(context["name"])}: {verdict}</title>
<style>body{{font-family:sans-serif;max-width:1200px;margin:2em auto}}
table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left}}tr.fail{{background:#fdd}}
tr.pass td:last-child{{color:#070}}img{{max-width:100%}}</style></head><body>
<h1>Load run {html.escape(context["name"])}: {verdict}</h1>
<p>Profile <b>{html.escape(context["profile"])}</b>, {context["duration"]:.0f} s of load.
<a href="locust.html">Locust's report</a> · <a href="summary.json">summary.json</a></p>
<h2>Thresholds</h2><table><tr><th>check</th><th>value</th><th>limit</th><th></th></tr>{rows}</table>
<h2>Counts</h2><pre>{html.escape(json.dumps(context["accounting"], indent=1))}</pre>
<h2>Memory peaks against compose.yaml's limits</h2>
<table><tr><th>service</th><th>peak working set</th><th>limit</th><th>share</th></tr>
{memory}</table>
<h2>Alerts that fired</h2><table><tr><th>alert</th><th>severity</th><th>from</th><th>to</th>
<th>began in</th></tr>{alerts}</table>
{capacity_section}
<h2>Notes</h2><ul>{notes}</ul>
<h2>Over the run</h2>{figures}
</body></html>
"""
    )


def fmt(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 or value == int(value) else f"{value:.3g}"
