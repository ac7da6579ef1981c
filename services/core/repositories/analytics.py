"""Analytics over the last N days (UTC days, today included): revenue, top spenders, new and
active users, and ticket figures. Days without activity come with zeros."""

from typing import Any

import sqlalchemy as sa

from .base import Repository

# The UTC days of the window, oldest first: the spine every daily figure is joined onto.
_DAYS = (
    "SELECT generate_series((now() AT TIME ZONE 'UTC')::date - (:days - 1),"
    " (now() AT TIME ZONE 'UTC')::date, interval '1 day')::date AS day"
)
_SINCE = "((now() AT TIME ZONE 'UTC')::date - (:days - 1)) AT TIME ZONE 'UTC'"

REVENUE = sa.text(
    f"WITH days AS ({_DAYS}), paid AS ("
    " SELECT (created_at AT TIME ZONE 'UTC')::date AS day, sum(amount) AS revenue,"
    " count(*) AS payments FROM payments"
    f" WHERE created_at >= {_SINCE} GROUP BY 1)"
    " SELECT days.day, coalesce(paid.revenue, 0) AS revenue,"
    " coalesce(paid.payments, 0) AS payments"
    " FROM days LEFT JOIN paid USING (day) ORDER BY days.day"
)
TOP_USERS = sa.text(
    "SELECT payments.user_id, users.username, sum(payments.amount) AS spend,"
    " count(*) AS payments FROM payments JOIN users ON users.id = payments.user_id"
    f" WHERE payments.created_at >= {_SINCE}"
    " GROUP BY payments.user_id, users.username"
    " ORDER BY spend DESC, payments.user_id LIMIT :limit"
)
USERS = sa.text(
    f"WITH days AS ({_DAYS}),"
    " new AS (SELECT (created_at AT TIME ZONE 'UTC')::date AS day, count(*) AS n FROM users"
    f"  WHERE created_at >= {_SINCE} GROUP BY 1),"
    " active AS (SELECT (created_at AT TIME ZONE 'UTC')::date AS day,"
    "  count(DISTINCT user_id) AS n FROM conversation_messages"
    f"  WHERE direction = 'in' AND created_at >= {_SINCE} GROUP BY 1)"
    " SELECT days.day, coalesce(new.n, 0) AS new_users, coalesce(active.n, 0) AS active_users"
    " FROM days LEFT JOIN new USING (day) LEFT JOIN active USING (day) ORDER BY days.day"
)
TICKETS = sa.text(
    "SELECT"
    " (SELECT count(*) FROM tickets WHERE status IN ('open', 'in_progress')) AS open_now,"
    " percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM"
    "  first_response_at - created_at)) FILTER (WHERE first_response_at IS NOT NULL)"
    "  AS median_first_response_seconds,"
    " percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM"
    "  coalesce(resolved_at, closed_at) - created_at))"
    "  FILTER (WHERE coalesce(resolved_at, closed_at) IS NOT NULL)"
    "  AS median_resolution_seconds"
    f" FROM tickets WHERE created_at >= {_SINCE}"
)


class AnalyticsRepository(Repository):
    async def _rows(self, query: sa.TextClause, **values: int) -> list[dict[str, Any]]:
        return [dict(row) for row in (await self.session.execute(query, values)).mappings()]

    async def revenue(self, days: int) -> list[dict[str, Any]]:
        """Per day, oldest first: day, revenue (stars) and payments."""
        return await self._rows(REVENUE, days=days)

    async def top_users(self, days: int, limit: int) -> list[dict[str, Any]]:
        """The biggest spenders: user_id, username, spend and payments."""
        return await self._rows(TOP_USERS, days=days, limit=limit)

    async def users(self, days: int) -> list[dict[str, Any]]:
        """Per day, oldest first: day, new_users (registered), active_users (wrote in)."""
        return await self._rows(USERS, days=days)

    async def tickets(self, days: int) -> dict[str, Any]:
        """open_now, and the medians (seconds) to first response and to resolution of the
        tickets opened in the window."""
        return (await self._rows(TICKETS, days=days))[0]
