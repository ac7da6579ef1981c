"""db_errors_total counts a failure once however many layers see it go by, and a new failure
raised while handling an old one (a retry in an except block) as a failure of its own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from services.core.db.metrics import DatabaseMetrics


class Wrapper(Exception):
    """As SQLAlchemy's DBAPIError: the driver's error in .orig."""

    def __init__(self, orig: BaseException) -> None:
        super().__init__(str(orig))
        self.orig = orig


def errors(metrics: DatabaseMetrics) -> float:
    """Of every kind."""
    return sum(
        sample.value
        for metric in metrics.registry.collect()
        for sample in metric.samples
        if sample.name == "db_errors_total"
    )


def test_a_failure_seen_again_wrapped_counts_once() -> None:
    metrics = DatabaseMetrics(CollectorRegistry())
    failure = OSError("connection reset")
    metrics.count_error(failure)
    metrics.count_error(failure)
    metrics.count_error(Wrapper(failure))
    try:
        raise RuntimeError("the unit of work's error") from failure
    except RuntimeError as translated:
        metrics.count_error(translated)
    assert errors(metrics) == 1


def test_a_failure_while_handling_another_counts_again() -> None:
    metrics = DatabaseMetrics(CollectorRegistry())
    try:
        try:
            raise OSError("first attempt")
        except OSError as first:
            metrics.count_error(first)
            raise OSError("the retry") from None
    except OSError as retry:
        assert retry.__context__ is not None
        metrics.count_error(retry)
    assert errors(metrics) == 2


def test_a_failed_connection_is_an_error_and_an_attempt() -> None:
    metrics = DatabaseMetrics(CollectorRegistry())
    metrics.count_failed_attempt(OSError("refused"), "connect")
    queries = metrics.registry.get_sample_value("db_queries_total", {"operation": "connect"})
    assert (errors(metrics), queries) == (1, 1)


def test_the_attempts_that_fail_before_a_statement_are_exported_from_the_start() -> None:
    # A series born at its first increment loses it to rate(): the error ratio read 100.5%.
    registry = CollectorRegistry()
    DatabaseMetrics(registry)
    for stage in ("connect", "begin"):
        assert registry.get_sample_value("db_queries_total", {"operation": stage}) == 0
