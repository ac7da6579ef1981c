"""What `botstack stats` shows, read as the monitoring role (pg_monitor: statistics views and
pg_stat_statements, no table data)."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

Rows = list[dict[str, Any]]

TABLES = """
SELECT s.relname AS table, pg_total_relation_size(s.relid) AS total_bytes,
       pg_relation_size(s.relid) AS table_bytes, pg_indexes_size(s.relid) AS index_bytes,
       c.reltuples::bigint AS rows_estimate, s.n_dead_tup AS dead_rows,
       greatest(s.last_vacuum, s.last_autovacuum) AS last_vacuum,
       greatest(s.last_analyze, s.last_autoanalyze) AS last_analyze
  FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
 WHERE s.schemaname = 'public'
 ORDER BY pg_total_relation_size(s.relid) DESC"""

UNUSED_INDEXES = """
SELECT s.relname AS table, s.indexrelname AS index, pg_relation_size(s.indexrelid) AS bytes
  FROM pg_stat_user_indexes s JOIN pg_index i ON i.indexrelid = s.indexrelid
 WHERE s.schemaname = 'public' AND s.idx_scan = 0 AND NOT i.indisunique AND NOT i.indisprimary
 ORDER BY pg_relation_size(s.indexrelid) DESC"""

CACHE_HIT = """
SELECT round(sum(blks_hit)::numeric / nullif(sum(blks_hit) + sum(blks_read), 0), 4)::float8
  FROM pg_stat_database WHERE datname = current_database()"""

CONNECTIONS = """
SELECT coalesce(state, 'background') AS state, count(*) AS connections
  FROM pg_stat_activity WHERE datname = current_database() GROUP BY 1 ORDER BY 2 DESC"""

COMMITS = """
SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"""

SLOWEST = """
SELECT round(mean_exec_time::numeric, 3)::float8 AS mean_ms,
       round(total_exec_time::numeric, 1)::float8 AS total_ms, calls,
       left(regexp_replace(query, '\\s+', ' ', 'g'), 160) AS query
  FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database
                                         WHERE datname = current_database())
 ORDER BY mean_exec_time DESC LIMIT $1"""


async def collect(
    connection: asyncpg.Connection, *, sample_seconds: float = 1.0, slowest: int = 10
) -> dict[str, Any]:
    tps = await transactions_per_second(connection, sample_seconds)
    statements: Rows | None
    try:
        statements = [dict(row) for row in await connection.fetch(SLOWEST, slowest)]
    except asyncpg.UndefinedTableError:
        statements = None  # the extension is not installed in this database
    return {
        "tables": [dict(row) for row in await connection.fetch(TABLES)],
        "unused_indexes": [dict(row) for row in await connection.fetch(UNUSED_INDEXES)],
        "cache_hit_ratio": await connection.fetchval(CACHE_HIT),
        "connections": [dict(row) for row in await connection.fetch(CONNECTIONS)],
        "transactions_per_second": tps,
        "slowest_statements": statements,
    }


async def transactions_per_second(connection: asyncpg.Connection, seconds: float) -> float:
    # The statistics snapshot is per transaction: clear it to see the counter move.
    await connection.execute("SELECT pg_stat_clear_snapshot()")
    before = await connection.fetchval(COMMITS)
    await asyncio.sleep(seconds)
    await connection.execute("SELECT pg_stat_clear_snapshot()")
    after = await connection.fetchval(COMMITS)
    # Each of the two reads is a transaction of its own.
    return round(max(0, int(after) - int(before) - 1) / seconds, 1)


async def table_rows(connection: asyncpg.Connection) -> dict[str, int]:
    """Row estimates per table, for the metrics of retention."""
    rows = await connection.fetch(
        "SELECT s.relname, greatest(c.reltuples, s.n_live_tup)::bigint AS rows"
        " FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid"
        " WHERE s.schemaname = 'public'"
    )
    return {row["relname"]: int(row["rows"]) for row in rows}
