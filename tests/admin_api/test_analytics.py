"""Analytics figures equal values worked out by hand from a fixed data set."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import httpx

from . import seed

TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def day(offset: int, hour: int = 12) -> datetime:
    """Noon (or the given hour) of today + offset days, UTC; today only at midnight, never in
    the future."""
    return TODAY + timedelta(days=offset, hours=hour if offset < 0 else 0)


async def _arrange(owner: asyncpg.Connection) -> dict[str, int]:
    u1 = await seed.user(owner, 1, username="one", created_at=day(-2))
    u2 = await seed.user(owner, 2, username="two", created_at=day(-2))
    u3 = await seed.user(owner, 3, username="three", created_at=day(0))
    await seed.user(owner, 4, created_at=day(-40))
    for user_id, amount, when in (
        (u1, 100, day(-2)),
        (u1, 50, day(-1)),
        (u2, 30, day(-1)),
        (u3, 7, day(0)),
        (u2, 1000, day(-40)),  # outside a 30-day window
    ):
        await seed.payment(owner, user_id, amount, created_at=when)
    for user_id, direction, when in (
        (u1, "in", day(-2)),
        (u1, "in", day(-2, 13)),
        (u1, "in", day(-1)),
        (u2, "in", day(-1)),
        (u3, "out", day(0)),  # the bot writing is not the user being active
    ):
        await owner.execute(
            "INSERT INTO conversation_messages (user_id, direction, text, created_at)"
            " VALUES ($1, $2, 'x', $3)",
            user_id,
            direction,
            when,
        )
    hour = timedelta(hours=1)
    for status, created, first, resolved, closed in (
        ("resolved", day(-2), day(-2) + hour, day(-2) + 5 * hour, None),
        ("in_progress", day(-1), day(-1) + 3 * hour, None, None),
        ("closed", day(-1), day(-1) + 2 * hour, None, day(-1) + 10 * hour),
        ("open", day(0), None, None, None),
        ("open", day(-40), None, None, None),  # open now, but outside the window
    ):
        await seed.ticket(
            owner,
            u1,
            status=status,
            created_at=created,
            first_response_at=first,
            resolved_at=resolved,
            closed_at=closed,
        )
    return {"u1": u1, "u2": u2, "u3": u3}


async def test_figures_match_the_hand_computed_values(
    client: httpx.AsyncClient, admin: dict[str, str], owner: asyncpg.Connection
) -> None:
    users = await _arrange(owner)
    dates = [(TODAY + timedelta(days=offset)).date().isoformat() for offset in (-2, -1, 0)]

    revenue = (await client.get("/analytics/revenue?days=3", headers=admin)).json()
    top = (await client.get("/analytics/top-users?days=3", headers=admin)).json()
    top_60 = (await client.get("/analytics/top-users?days=60&limit=1", headers=admin)).json()
    daily_users = (await client.get("/analytics/users?days=3", headers=admin)).json()
    tickets = (await client.get("/analytics/tickets?days=30", headers=admin)).json()
    month = (await client.get("/analytics/revenue", headers=admin)).json()

    assert revenue == [
        {"day": dates[0], "revenue": 100, "payments": 1},
        {"day": dates[1], "revenue": 80, "payments": 2},
        {"day": dates[2], "revenue": 7, "payments": 1},
    ]
    assert [(row["user_id"], row["spend"], row["payments"]) for row in top] == [
        (users["u1"], 150, 2),
        (users["u2"], 30, 1),
        (users["u3"], 7, 1),
    ]
    assert [(row["username"], row["spend"]) for row in top_60] == [("two", 1030)]
    assert daily_users == [
        {"day": dates[0], "new_users": 2, "active_users": 1},
        {"day": dates[1], "new_users": 0, "active_users": 2},
        {"day": dates[2], "new_users": 1, "active_users": 0},
    ]
    assert tickets == {
        "open_now": 3,
        "median_first_response_seconds": 2 * 3600,  # of 1 h, 2 h, 3 h
        "median_resolution_seconds": 7.5 * 3600,  # of 5 h and 10 h
    }
    assert len(month) == 30
    assert sum(row["revenue"] for row in month) == 187
