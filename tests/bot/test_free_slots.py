"""Which slots are free, asked by the bot's /book and the admin API's free slots alike
(services/core/schedule.py): a slot that has begun or passed is never free, whatever day is
asked for."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import asyncpg
import httpx

from services.admin_api.app import create_app
from services.admin_api.auth import issue_key
from services.admin_api.settings import AdminApiSettings
from services.core.db import Database
from services.core.schedule import BusinessHours, free_slots
from services.core.schema import Role, Staff

DAY = date(2031, 5, 6)
HOURS = BusinessHours()  # 09:00 to 18:00 UTC, an hour a slot: nine a day


def _at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=UTC)


async def test_a_slot_that_has_begun_or_passed_is_never_free(
    database: Database, owner: asyncpg.Connection
) -> None:
    user_id = await owner.fetchval(
        "INSERT INTO users (telegram_id, first_name) VALUES (5151, 'Ann') RETURNING id"
    )
    await owner.execute(
        "INSERT INTO appointments (user_id, starts_at, ends_at) VALUES ($1, $2, $3)",
        user_id,
        _at(DAY, 15),
        _at(DAY, 16),
    )
    yesterday = DAY - timedelta(days=1)
    async with database.unit_of_work() as uow:
        # 12:30: the 12:00 slot has begun, the 15:00 one is booked.
        midday = await free_slots(uow, HOURS, [yesterday, DAY], _at(DAY, 12, 30))
        # Exactly at a slot's start: it has begun.
        at_start = await free_slots(uow, HOURS, [DAY], _at(DAY, 13))
        evening = await free_slots(uow, HOURS, [yesterday, DAY], _at(DAY, 20))
        morning = await free_slots(uow, HOURS, [DAY], _at(DAY, 0), limit=3)

    assert midday == [_at(DAY, hour) for hour in (13, 14, 16, 17)]
    assert at_start == [_at(DAY, hour) for hour in (14, 16, 17)]
    assert evening == []
    assert morning == [_at(DAY, hour) for hour in (9, 10, 11)]


async def test_the_admin_api_lists_no_free_slot_on_a_past_day(
    database: Database, owner: asyncpg.Connection
) -> None:
    async with database.unit_of_work() as uow:
        staff = Staff(name="viewer", role=Role.VIEWER)
        uow.session.add(staff)
        await uow.session.flush()
        assert staff.id is not None
        key = (await issue_key(uow, staff.id, "viewer key")).key
    transport = httpx.ASGITransport(app=create_app(AdminApiSettings(), database))
    today = datetime.now(UTC).date()
    async with httpx.AsyncClient(transport=transport, base_url="http://admin-api") as client:
        headers = {"Authorization": f"Bearer {key}"}
        past = await client.get(
            f"/appointments/free-slots?day={today - timedelta(days=2)}", headers=headers
        )
        ahead = await client.get(
            f"/appointments/free-slots?day={today + timedelta(days=2)}", headers=headers
        )

    assert past.status_code == 200
    assert past.json() == []
    assert [slot["starts_at"][11:16] for slot in ahead.json()] == [
        f"{hour:02}:00" for hour in range(9, 18)
    ]
