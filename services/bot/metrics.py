"""Prometheus metrics of the bot. Labels stay low-cardinality: update type, outcome, Bot API
method and result, never a user or chat id."""

from __future__ import annotations

from enum import StrEnum

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Outcome(StrEnum):
    HANDLED = "handled"
    DUPLICATE = "duplicate"
    THROTTLED = "throttled"
    FAILED = "failed"  # a handler raised: 500, Telegram redelivers
    UNAVAILABLE = "unavailable"  # the database is down: 503, Telegram redelivers
    REJECTED = "rejected"  # wrong secret or not an Update: never reaches a handler
    # The database refused the update's data (an over-long text): recorded, not retried.
    INVALID = "invalid"
    BLOCKED = "blocked"  # from a user staff blocked: recorded and ignored


class BotMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.updates = Counter(
            "bot_updates",
            "Updates (by webhook or polling) by type and outcome",
            ["type", "outcome"],
            registry=registry,
        )
        # Every outcome at zero from the start (for the commonest type), so a ratio of
        # outcomes has data before the first update.
        for outcome in Outcome:
            self.updates.labels("message", outcome)
        self.latency = Histogram(
            "bot_update_duration_seconds",
            "Time from receiving an update to answering the webhook (or, polling, processing it)",
            ["type"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.api_calls = Counter(
            "bot_telegram_api_calls",
            "Bot API calls by method and result (ok, or the error class)",
            ["method", "result"],
            registry=registry,
        )
        self.outbox = Counter(
            "bot_outbox_messages",
            "Outbox deliveries by result (sent, retried, failed)",
            ["result"],
            registry=registry,
        )
        self.outbox_depth = Gauge(
            "bot_outbox_pending",
            "Outbox messages due and not yet sent (read every few seconds by the delivery "
            "loop); those scheduled for later (reminders, retry_after) are not counted",
            registry=registry,
        )
        self.outbox_oldest = Gauge(
            "bot_outbox_oldest_pending_age_seconds",
            "How long the oldest due outbox message has waited since it was due; 0 when none",
            registry=registry,
        )
