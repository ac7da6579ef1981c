"""Appointments: listing, confirm, cancel (the user is told), and free slots."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx

from . import seed

DAY = datetime(2031, 5, 6, tzinfo=UTC)


async def _book(owner: asyncpg.Connection, user_id: int, hour: int, hours: int = 1) -> int:
    appointment_id: int = await owner.fetchval(
        "INSERT INTO appointments (user_id, starts_at, ends_at) VALUES ($1, $2, $3) RETURNING id",
        user_id,
        DAY + timedelta(hours=hour),
        DAY + timedelta(hours=hour + hours),
    )
    return appointment_id


async def test_free_slots_skip_live_appointments_within_business_hours(
    client: httpx.AsyncClient, admin: dict[str, str], owner: asyncpg.Connection
) -> None:
    user_id = await seed.user(owner, 77)
    await _book(owner, user_id, 10, hours=2)
    cancelled = await _book(owner, user_id, 14)
    await client.post(f"/appointments/{cancelled}/cancel", headers=admin)
    await client.put(
        "/settings/booking.hours",
        json={"value": {"open": "09:00", "close": "15:00", "slot_minutes": 60}},
        headers=admin,
    )

    slots = (await client.get("/appointments/free-slots?day=2031-05-06", headers=admin)).json()

    assert [slot["starts_at"][11:16] for slot in slots] == ["09:00", "12:00", "13:00", "14:00"]


async def test_cancel_tells_the_user_and_confirm_changes_status(
    client: httpx.AsyncClient, admin: dict[str, str], owner: asyncpg.Connection
) -> None:
    user_id = await seed.user(owner, 78)
    first = await _book(owner, user_id, 9)
    second = await _book(owner, user_id, 11)

    confirmed = await client.post(f"/appointments/{first}/confirm", headers=admin)
    cancelled = await client.post(f"/appointments/{second}/cancel", headers=admin)
    twice = await client.post(f"/appointments/{second}/cancel", headers=admin)

    assert confirmed.json()["status"] == "confirmed"
    assert cancelled.json()["status"] == "cancelled"
    assert twice.status_code == 409
    outbox = await owner.fetch("SELECT chat_id, payload FROM outbox")
    assert len(outbox) == 1
    assert outbox[0]["chat_id"] == 78
    notice = json.loads(outbox[0]["payload"])
    assert notice["notice"] == "booking_cancelled"
    assert notice["values"] == {"starts_at": "06.05.2031 11:00", "zone": "UTC"}
    listed = await client.get(
        "/appointments?status=confirmed&starts_from=2031-05-06T00:00:00Z"
        "&starts_to=2031-05-07T00:00:00Z",
        headers=admin,
    )
    assert [row["id"] for row in listed.json()] == [first]


async def test_business_hours_that_do_not_fit_are_refused(
    client: httpx.AsyncClient, admin: dict[str, str], owner: asyncpg.Connection
) -> None:
    for value in (
        {"open": "18:00", "close": "09:00"},
        {"timezone": "Mars/Olympus_Mons"},
        {"slot_minutes": 1},
        {"opens": "09:00"},
    ):
        answer = await client.put("/settings/booking.hours", json={"value": value}, headers=admin)
        assert answer.status_code == 422, value
        assert answer.json()["field"] == "body.value"
    assert await owner.fetchval("SELECT count(*) FROM runtime_settings") == 0


async def test_free_slots_are_cut_in_the_business_time_zone(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    hours = {"open": "09:00", "close": "11:00", "slot_minutes": 60, "timezone": "Asia/Tokyo"}
    await client.put("/settings/booking.hours", json={"value": hours}, headers=admin)

    slots = (await client.get("/appointments/free-slots?day=2031-05-06", headers=admin)).json()

    # 09:00 and 10:00 in Tokyo (UTC+9) are midnight and 01:00 UTC.
    assert [slot["starts_at"] for slot in slots] == [
        "2031-05-06T00:00:00Z",
        "2031-05-06T01:00:00Z",
    ]
