"""The Grafana dashboards, as code (Grafana's foundation SDK), rendered into dashboards/*.json
by `python -m infra.observability`: Bot, Database, Backups, Host. Every dashboard has a fixed
uid and reads the provisioned datasource by its fixed uid; every panel has a unit, and the
alert thresholds are drawn where an alert watches the quantity. Expressions reuse the alert
catalogue's where they show the same thing, so a panel and its alert cannot disagree."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from grafana_foundation_sdk.builders import common as common_builder
from grafana_foundation_sdk.builders import dashboard as builder
from grafana_foundation_sdk.builders import prometheus, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

from .alerts import ALERTS

DATASOURCE = common.DataSourceRef(type_val="prometheus", uid="prometheus")
ALERT_EXPR = {alert.name: alert.expr for alert in ALERTS}
RATE = "$__rate_interval"


@dataclass(frozen=True)
class PanelSpec:
    title: str
    unit: str
    queries: tuple[tuple[str, str], ...]  # (PromQL, legend)
    threshold: float | None = None  # drawn in red: where an alert fires
    description: str = ""


@dataclass(frozen=True)
class DashboardSpec:
    uid: str
    title: str
    description: str
    panels: tuple[PanelSpec, ...] = field(default_factory=tuple)


def _quantiles(metric: str, by: str, legend: str) -> tuple[tuple[str, str], ...]:
    return tuple(
        (
            f"histogram_quantile({q}, sum by ({by}le) (rate({metric}_bucket[{RATE}])))",
            f"p{round(q * 100)} {legend}",
        )
        for q in (0.5, 0.99)
    )


DASHBOARDS: tuple[DashboardSpec, ...] = (
    DashboardSpec(
        "botstack-bot",
        "Bot",
        "Telegram updates, handling latency, Bot API calls and the outbox.",
        (
            PanelSpec(
                "Updates per second by type and outcome",
                "reqps",
                (
                    (
                        f"sum by (type, outcome) (rate(bot_updates_total[{RATE}]))",
                        "{{type}} {{outcome}}",
                    ),
                ),
            ),
            PanelSpec(
                "Update handling latency",
                "s",
                _quantiles("bot_update_duration_seconds", "", ""),
            ),
            PanelSpec(
                "Bot API calls by result",
                "reqps",
                (
                    (
                        f"sum by (method, result) (rate(bot_telegram_api_calls_total[{RATE}]))",
                        "{{method}} {{result}}",
                    ),
                ),
            ),
            PanelSpec(
                "Outbox: messages due, not yet sent",
                "short",
                (("max(bot_outbox_pending)", "waiting"),),
            ),
            PanelSpec(
                "Outbox: how late the oldest due message is",
                "s",
                ((ALERT_EXPR["OutboxBehind"], "oldest"),),
                threshold=300,
            ),
        ),
    ),
    DashboardSpec(
        "botstack-database",
        "Database",
        "Connection pools at every level, query latency, errors, PgBouncer and PostgreSQL.",
        (
            PanelSpec(
                "Pool use per service (SQLAlchemy)",
                "percentunit",
                (("max by (job) (db_pool_utilization)", "{{job}}"),),
                threshold=0.8,
            ),
            PanelSpec(
                "Pool wait",
                "s",
                _quantiles("db_pool_wait_seconds", "job, ", "{{job}}"),
            ),
            PanelSpec(
                "Query latency by operation",
                "s",
                _quantiles("db_query_duration_seconds", "operation, ", "{{operation}}"),
                threshold=5,
            ),
            PanelSpec(
                "Database errors by kind",
                "reqps",
                ((f"sum by (kind) (rate(db_errors_total[{RATE}]))", "{{kind}}"),),
            ),
            PanelSpec(
                "PgBouncer clients",
                "short",
                (
                    ("sum(pgbouncer_pools_client_active_connections)", "active"),
                    ("sum(pgbouncer_pools_client_waiting_connections)", "waiting"),
                ),
            ),
            PanelSpec(
                "PgBouncer server pool use (botstack)",
                "percentunit",
                ((ALERT_EXPR["PgBouncerServerPoolSaturated"], "server pool"),),
                threshold=0.8,
            ),
            PanelSpec(
                "PostgreSQL connections against max_connections",
                "short",
                (
                    ("sum(pg_stat_activity_count)", "connections"),
                    ("max(pg_settings_max_connections)", "max_connections"),
                ),
            ),
            PanelSpec(
                "Transactions per second",
                "reqps",
                (
                    (
                        f'sum(rate(pg_stat_database_xact_commit{{datname="botstack"}}[{RATE}]))',
                        "commits",
                    ),
                    (
                        f'sum(rate(pg_stat_database_xact_rollback{{datname="botstack"}}[{RATE}]))',
                        "rollbacks",
                    ),
                ),
            ),
            PanelSpec(
                "Database size",
                "bytes",
                (('max(pg_database_size_bytes{datname="botstack"})', "botstack"),),
            ),
            PanelSpec(
                "Longest running statement",
                "s",
                ((ALERT_EXPR["SlowQueryRunning"], "longest"),),
                threshold=5,
            ),
            PanelSpec(
                "WAL archiver",
                "short",
                (
                    (f"sum(rate(pg_stat_archiver_archived_count[{RATE}]))", "archived per second"),
                    (f"sum(rate(pg_stat_archiver_failed_count[{RATE}]))", "failed per second"),
                ),
            ),
        ),
    ),
    DashboardSpec(
        "botstack-backups",
        "Backups",
        "Base backups, restore drills and WAL archiving.",
        (
            PanelSpec(
                "Time since the last verified backup",
                "s",
                ((ALERT_EXPR["BackupTooOld"], "age"),),
                threshold=30 * 3600,
            ),
            PanelSpec(
                "Last backup: size",
                "bytes",
                (("max(backup_last_size_bytes)", "size"),),
            ),
            PanelSpec(
                "Last backup: duration",
                "s",
                (("max(backup_last_duration_seconds)", "duration"),),
            ),
            PanelSpec(
                "Last restore drill: passed (1) or failed (0)",
                "short",
                (("min(backup_drill_last_success)", "passed"),),
            ),
            PanelSpec(
                "Last restore drill: duration",
                "s",
                (("max(backup_drill_last_duration_seconds)", "duration"),),
            ),
            PanelSpec(
                "Archive backlog: the oldest completed WAL segment not yet archived",
                "s",
                ((ALERT_EXPR["WalArchiveStale"], "waiting"),),
                threshold=60,
            ),
            PanelSpec(
                "Archive failures",
                "short",
                (
                    (f"sum(increase(backup_wal_archive_failed_total[{RATE}]))", "failed attempts"),
                    ("max(backup_wal_archive_failing)", "failing now"),
                ),
            ),
        ),
    ),
    DashboardSpec(
        "botstack-host",
        "Host",
        "The VPS: CPU, memory, disk.",
        (
            PanelSpec(
                "CPU use",
                "percentunit",
                ((f'1 - avg(rate(node_cpu_seconds_total{{mode="idle"}}[{RATE}]))', "cpu"),),
            ),
            PanelSpec(
                "Memory use",
                "percentunit",
                ((ALERT_EXPR["MemoryAlmostFull"], "{{instance}}"),),
                threshold=0.85,
            ),
            PanelSpec(
                "Disk use",
                "percentunit",
                ((ALERT_EXPR["DiskAlmostFull"], "{{mountpoint}}"),),
                threshold=0.9,
            ),
            PanelSpec("Load average", "short", (("max(node_load1)", "1 min"),)),
        ),
    ),
)


def _panel(spec: PanelSpec, panel_id: int) -> timeseries.Panel:
    steps = [model.Threshold(value=None, color="green")]
    if spec.threshold is not None:
        steps.append(model.Threshold(value=spec.threshold, color="red"))
    panel = (
        timeseries.Panel()
        .id(panel_id)
        .title(spec.title)
        .unit(spec.unit)
        .datasource(DATASOURCE)
        .thresholds(builder.ThresholdsConfig().mode(model.ThresholdsMode.ABSOLUTE).steps(steps))
        .span(12)
        .height(8)
        .legend(
            common_builder.VizLegendOptions()
            .show_legend(True)
            .display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM)
        )
    )
    if spec.threshold is not None:
        # The threshold drawn as a line, so one sees how far the series is from the alert.
        panel = panel.thresholds_style(
            common_builder.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.LINE)
        )
    if spec.description:
        panel = panel.description(spec.description)
    for ref, (expr, legend) in zip("ABCDEFGH", spec.queries, strict=False):
        panel = panel.with_target(
            prometheus.Dataquery()
            .ref_id(ref)
            .expr(expr)
            .legend_format(legend)
            .datasource(DATASOURCE)
        )
    return panel


def build(spec: DashboardSpec) -> dict[str, Any]:
    board = (
        builder.Dashboard(spec.title)
        .uid(spec.uid)
        .description(spec.description)
        .tags(["botstack"])
        .refresh("30s")
        .time("now-3h", "now")
        .timezone("browser")
    )
    for number, panel in enumerate(spec.panels, start=1):
        board = board.with_panel(_panel(panel, number))
    data: dict[str, Any] = json.loads(JSONEncoder(sort_keys=True).encode(board.build()))
    return data


def render(spec: DashboardSpec) -> str:
    return json.dumps(build(spec), indent=2, sort_keys=True) + "\n"
